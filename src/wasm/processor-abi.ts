// The event processor ABI (docs/wasm.md, "Event processors"): what a processor module exports
// and imports. A processor is a wasm32 module (a WASI reactor, or no WASI at all) that sees every
// record of the events it is declared for, before the agent logs it.
//
//   exports  memory
//            kbpf_processor_input(size: i32) -> i32      where the host writes the next record
//            kbpf_process(ptr: i32, size: i32) -> i32    PROCESS_DROP, PROCESS_KEEP (the bytes at
//                                                        ptr, maybe rewritten in place, are logged)
//            kbpf_flush(now_ms: i64)                     optional: about once a second and at the end
//            _initialize                                 optional (a WASI reactor's start)
//   imports  kbpf.emit(ptr: i32, size: i32) -> i32       logs a record of the event's layout
//            kbpf.emit_json(ptr: i32, size: i32) -> i32  logs a JSON object (an aggregate, a summary)
//            wasi_snapshot_preview1.*                    no files, no arguments; stdout/stderr discarded
export const PROCESSOR_IMPORT_MODULE = 'kbpf';
export const PROCESS_DROP = 0;
export const PROCESS_KEEP = 1;
export const PROCESSOR_EXPORTS = {
  input: 'kbpf_processor_input',
  process: 'kbpf_process',
  flush: 'kbpf_flush',
} as const;

/** What the host sends a processor's worker: a batch of records, one buffer, their lengths. */
export interface ProcessorBatch {
  t: 'batch';
  id: number;
  bytes: ArrayBuffer;
  lengths: number[];
}

/** What a processor's worker answers: the records kept (one buffer), JSON texts emitted, counts. */
export interface ProcessorResult {
  t: 'result' | 'flushed';
  id: number;
  bytes: ArrayBuffer;
  lengths: number[];
  json: string[];
  dropped: number;
  emitted: number;
}

export interface ProcessorFailure {
  t: 'failed';
  message: string;
}

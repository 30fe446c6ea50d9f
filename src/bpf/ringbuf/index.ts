export { RingBufferReader, resolveCodec } from './reader.js';
export type { RingBufferReaderOptions, RingBufferStats, RecordDecode, RawRecordVisitor } from './reader.js';
export { lostCounterReader } from './lost.js';

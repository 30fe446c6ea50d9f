export { lostCounterReader } from './lost.js';
export type { RawRecordVisitor, RecordDecode, RingBufferReaderOptions, RingBufferStats } from './reader.js';
export { RingBufferReader, resolveCodec } from './reader.js';

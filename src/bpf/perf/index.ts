export type { PerfBufferReaderOptions, PerfBufferStats } from './reader.js';
export { PerfBufferReader } from './reader.js';

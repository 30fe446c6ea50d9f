export { PerfBufferReader } from './reader.js';
export type { PerfBufferReaderOptions, PerfBufferStats } from './reader.js';

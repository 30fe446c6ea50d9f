export { type RecordDecode, RecordDecoder, resolveCodec } from './decode.js';
export { RecordQueue, type RecordQueueOptions, type RecordWatcher } from './queue.js';
export { queueOver, RecordReader } from './reader.js';
export { RecordCounts, type RecordSource } from './source.js';

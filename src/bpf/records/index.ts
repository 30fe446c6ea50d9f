export { type RecordDecode, RecordDecoder, resolveCodec } from './decode.js';
export { RecordQueue, type RecordQueueOptions, type RecordWatcher } from './queue.js';
export { RecordCounts, type RecordSource } from './source.js';

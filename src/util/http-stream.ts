// Streaming NDJSON over HTTP: write a chunk, and when the socket's buffer is full wait for it to
// drain (or for the stream to be aborted) before producing more.
import type { ServerResponse } from 'node:http';

export async function writeWithBackpressure(res: ServerResponse, text: string, signal: AbortSignal): Promise<void> {
  if (res.write(text)) return;
  await new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.on('drain', done);
    signal.addEventListener('abort', done);
  });
}

// Child process of ringbuf-poller.test.ts: checks what keeps a process alive. Prints what
// happened on stdout; the parent measures how long the process lived.
//   fifo-ref <path>     a ref'd armed watch on a FIFO another timer writes to after 300 ms
//   fifo-unref <path>   an unref'd armed watch on a FIFO nobody writes to: must exit at once
//   reader-close <obj>  a ring buffer iterator waiting, closed after 100 ms
//   reader-unref <obj>  an unref'd ring buffer iterator waiting: must exit at once
import { constants, openSync, writeSync } from 'node:fs';
import { BpfObject } from '../../src/bpf/object.js';
import { poller } from '../../src/bpf/poller.js';
import { RingBufferReader } from '../../src/bpf/ringbuf/index.js';

const [mode, path] = process.argv.slice(2);
const out = (s: string) => process.stdout.write(`${s}\n`);

if (mode === 'fifo-ref' || mode === 'fifo-unref') {
  const fd = openSync(path!, constants.O_RDWR | constants.O_NONBLOCK);
  const w = poller().watch(fd, () => out('fired'), { ref: mode === 'fifo-ref' });
  w.arm();
  out(`armed waiting=${poller().waiting} polling=${poller().polling}`);
  if (mode === 'fifo-ref') setTimeout(() => writeSync(fd, 'x'), 300).unref();
} else {
  const obj = BpfObject.open(path!).load();
  const reader = new RingBufferReader(obj.map('events'), { typeName: 'event' });
  if (mode === 'reader-unref') reader.unref();
  void reader.next().then((r) => {
    out(`next done=${r.done}`);
    obj.close();
  });
  if (mode === 'reader-close') setTimeout(() => reader.close(), 100).unref();
  out('waiting');
}

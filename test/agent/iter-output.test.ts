// An iterator's output as log entries: text lines, records of its struct, or a hex dump.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { asText, hexDump, iterEntries } from '../../src/agent/iter-output.js';

test('text output is one entry per line', () => {
  assert.deepEqual(iterEntries(Buffer.from('PID COMM\n1 init\n')), [{ output: 'PID COMM' }, { output: '1 init' }]);
  assert.equal(asText(Buffer.from('tab\there\n')), 'tab\there\n');
});

test('binary output without a record struct is a hex dump, never escaped text', () => {
  const bytes = Uint8Array.from([1, 0, 0, 0, 0x6b, 0x74, 0x68, 0, 0xff, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.equal(asText(bytes), undefined);
  const lines = iterEntries(bytes).map((e) => e.output);
  assert.deepEqual(lines, [
    '00000000  01 00 00 00 6b 74 68 00 ff 02 03 04 05 06 07 08  |....kth.........|',
    '00000010  09 0a                                            |..|',
  ]);
  assert.deepEqual(hexDump(new Uint8Array()), []);
  assert.equal(asText(Uint8Array.from([0xc3, 0x28])), undefined, 'not UTF-8');
});

// Event fields and histogram maps as a human reads them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LogRecord } from '../../src/agent/log-store.js';
import { formatEvent, formatField, ipv6 } from '../../src/cli/render/fields.js';
import { histogramSlots, renderLog2Histogram } from '../../src/cli/render/histogram.js';
import { LogTable, sourceMatches } from '../../src/cli/render/logs.js';
import { renderMaps } from '../../src/cli/render/maps.js';
import { openFlags } from '../../src/compile/open-flags.js';

test('addresses, ports, pointers and flags read as such', () => {
  assert.equal(formatField([127, 0, 0, 1], { kind: 'ipv4' }), '127.0.0.1');
  assert.equal(formatField(0x0100007f, { kind: 'ipv4' }), '127.0.0.1');
  assert.equal(formatField([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], { kind: 'ipv6' }), '::1');
  assert.equal(ipv6([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1]), '2001:db8::1:0:0:1');
  assert.equal(ipv6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1]), '::ffff:10.0.0.1');
  assert.equal(ipv6([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 'fe80::');
  assert.equal(formatField(0x901f, { kind: 'net-port' }), 8080);
  assert.equal(formatField(8080, { kind: 'port' }), 8080);
  assert.equal(formatField(0xffff8880deadbeefn, { kind: 'hex' }), '0xffff8880deadbeef');
  const names: [string, number][] = [
    ['O_WRONLY', 1],
    ['O_CREAT', 64],
    ['O_TRUNC', 512],
  ];
  assert.equal(formatField(577, { kind: 'flags', names }), 'O_WRONLY|O_CREAT|O_TRUNC');
  assert.equal(formatField(0x10001, { kind: 'flags', names }), 'O_WRONLY|0x10000');
  assert.equal(formatField('O_CREAT', { kind: 'flags', names }), 'O_CREAT');
  assert.equal(formatField(64, { kind: 'enum', names }), 'O_CREAT');
  // a 16-byte address whose family field says AF_INET: its first 4 bytes (bcc's tcplife, tcpstates)
  const inet = { kind: 'inet', family: 'family' } as const;
  const v4 = '0x0000000000000000deadbeef0100007f';
  assert.equal(formatField(BigInt(v4).toString(), inet, { family: 2 }), '127.0.0.1');
  assert.equal(formatField([127, 0, 0, 1, 9, 9, 9, 9, 0, 0, 0, 0, 0, 0, 0, 0], inet, { family: 2 }), '127.0.0.1');
  const v6 = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
  assert.equal(formatField(v6, inet, { family: 10 }), '::1');
  assert.deepEqual(formatEvent({ saddr: v6, family: 10 }, { saddr: inet }), { saddr: '::1', family: 10 });
  // a stack: addresses in hex, its unused zero entries dropped
  assert.deepEqual(formatField(['18446744071578845184', 4096, 0, 0], { kind: 'hex' }), [
    '0xffffffff81000000',
    '0x1000',
  ]);
  // a stack field: its frames (the agent's symbols) or addresses in hex on one line, as many as its size field says
  const stack = { kind: 'stack', size: 'sz' } as const;
  assert.equal(formatField(['18446744071578845184', 4096, 0, 0], stack), '0xffffffff81000000;0x1000');
  assert.equal(formatField([1, 2, 3, 4], stack, { sz: 16 }), '0x1;0x2');
  assert.equal(
    formatField(['do_syscall_64+0x10', '0x7f00 (libc.so.6)'], stack),
    'do_syscall_64+0x10;0x7f00 (libc.so.6)',
  );
  const id = { kind: 'stack-id', map: 'stacks' } as const;
  assert.equal(formatField(['a+0x1', 'b+0x2'], id), 'a+0x1;b+0x2');
  assert.equal(formatField(-14, id), -14, 'a failed bpf_get_stackid');
  // a value that does not fit the format stays as it is
  assert.equal(formatField('n/a', { kind: 'ipv4' }), 'n/a');
  assert.deepEqual(formatEvent({ daddr: [10, 1, 2, 3], pid: 7 }, { daddr: { kind: 'ipv4' } }), {
    daddr: '10.1.2.3',
    pid: 7,
  });
});

test("open(2)'s flags by name, per architecture (they are #defines: no BTF has them)", () => {
  const x64 = { kind: 'flags', names: openFlags('x64') } as const;
  assert.equal(formatField(0, x64), 'O_RDONLY');
  assert.equal(formatField(0o2000000, x64), 'O_CLOEXEC');
  assert.equal(formatField(0o1101, x64), 'O_WRONLY|O_CREAT|O_TRUNC');
  assert.equal(formatField(0o2200002, x64), 'O_RDWR|O_DIRECTORY|O_CLOEXEC');
  // arm64 moves O_DIRECTORY, O_NOFOLLOW, O_DIRECT and O_LARGEFILE
  const arm64 = { kind: 'flags', names: openFlags('arm64') } as const;
  assert.equal(formatField(0o40000, arm64), 'O_DIRECTORY');
  assert.equal(formatField(0o40000, x64), 'O_DIRECT');
});

test('the logs table formats fields and marks printk lines; --source filters', () => {
  let out = '';
  const t = new LogTable((s) => (out += s), new Map([['events', { daddr: { kind: 'ipv4' as const } }]]));
  const recs: LogRecord[] = [
    { ts: '2024-01-01T10:00:00.000Z', seq: 1, source: 'events', event: { pid: 1, daddr: [127, 0, 0, 1] } },
    { ts: '2024-01-01T10:00:00.001Z', seq: 2, source: 'kbpf_printk', event: { line: 'hello 42\n' } },
  ];
  t.add(recs);
  assert.match(out, /^TIME\s+PID\s+DADDR\n/);
  assert.match(out, /\s1\s+127\.0\.0\.1\n/);
  assert.match(out, /printk: hello 42\n$/);
  assert.doesNotMatch(out, /LINE/);
  assert.deepEqual(
    recs.filter((r) => sourceMatches(r, ['printk'])).map((r) => r.seq),
    [2],
  );
  assert.deepEqual(
    recs.filter((r) => sourceMatches(r, ['events'])).map((r) => r.seq),
    [1],
  );
  assert.equal(recs.filter((r) => sourceMatches(r, [])).length, 2);
});

test('a map of log2 histograms is drawn like the tools draw it', () => {
  assert.deepEqual(histogramSlots({ slots: [1, 2, 0] }), [1, 2, 0]);
  assert.equal(histogramSlots({ slots: 'x' }), undefined);
  assert.equal(histogramSlots([1, 2]), undefined);
  const h = renderLog2Histogram([1, 2, 4, 0, 0]);
  assert.equal(
    h,
    [
      '     value               : count    distribution',
      '         0 -> 1          : 1        |**********                              |',
      '         2 -> 3          : 2        |********************                    |',
      '         4 -> 7          : 4        |****************************************|',
      '',
    ].join('\n'),
  );
  const maps = renderMaps('table', [
    {
      name: 'lat',
      type: 'hash',
      entries: [
        [1, { slots: [0, 3] }],
        [2, { slots: [0, 0] }],
      ],
    },
    { name: 'plain', type: 'hash', entries: [[1, 5]] },
  ]);
  assert.match(maps, /^lat \(hash, 2 entries\)\n {2}key 1\n {7}value {15}: count/);
  assert.doesNotMatch(maps, /key 2/);
  assert.match(maps, /plain \(hash, 1 entry\)\n {2}KEY\s+VALUE\n {2}1\s+5/);
});

test('kbpf maps: a stack trace map as frames one a line; entries keyed by stacks as lines and frames, largest first', () => {
  const out = renderMaps('table', [
    { name: 'stackmap', type: 'stack_trace', entries: [[7, ['do_syscall_64+0x71', 'entry_SYSCALL_64+0x76']]] },
    {
      name: 'counts',
      type: 'hash',
      entries: [
        [{ pid: 9, user_stack_id: -14, kern_stack_id: ['schedule+0x27'] }, 2],
        [{ pid: 5, user_stack_id: ['main+0x1 (a.out)'], kern_stack_id: -17 }, 40],
      ],
    },
    { name: 'start', type: 'hash', entries: [[3, { ts: 1, key: { pid: 3, kern_stack_id: ['f+0x1'] } }]] },
  ]);
  assert.equal(
    out,
    [
      'stackmap (stack_trace, 1 entry)',
      '  stack 7',
      '    do_syscall_64+0x71',
      '    entry_SYSCALL_64+0x76',
      '',
      'counts (hash, 2 entries)',
      '  pid=5 kern_stack_id=-17 → 40',
      '    user_stack_id:',
      '      main+0x1 (a.out)',
      '  pid=9 user_stack_id=-14 → 2',
      '    kern_stack_id:',
      '      schedule+0x27',
      '',
      'start (hash, 1 entry)',
      '  3 → ts=1 key.pid=3',
      '    key.kern_stack_id:',
      '      f+0x1',
      '',
    ].join('\n'),
  );
});

test('byte buffers holding text read as text, up to their length field; other bytes in hex', () => {
  const text = { kind: 'text', size: 'len' } as const;
  const buf = [...Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 0, 0, 0, 0];
  assert.equal(formatField(buf, text, { len: 14 }), 'GET / HTTP/1.1');
  assert.equal(
    formatField(buf, text, { len: 1000 }),
    'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
    'a length past the buffer: all of it',
  );
  assert.equal(
    formatField(buf, { kind: 'text' }),
    'GET / HTTP/1.1\r\nHost: x\r\n\r\n',
    'no length: to the last non-zero byte',
  );
  assert.equal(formatField([0x16, 0x03, 0x01, 0x02, 0x00], text, { len: 4 }), '0x16030102', 'a TLS record header: hex');
  assert.equal(formatField(new Array(100).fill(1), { kind: 'text' }), `0x${'01'.repeat(64)}… (100 bytes)`);
  assert.equal(formatField([], text, { len: 0 }), '');
  assert.equal(formatField('already text', text, {}), 'already text');
});

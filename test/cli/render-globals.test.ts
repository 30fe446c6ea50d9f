// Global variables as `kbpf maps` shows them: histograms drawn, counter arrays as the entries
// that are not 0, other values as they decode; .rodata as the config.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MapDump } from '../../src/agent/api-client.js';
import { renderMaps } from '../../src/cli/render/maps.js';

const section = (name: string, variables: MapDump['variables']): MapDump => ({
  name,
  type: 'array',
  entries: [],
  section: name,
  variables,
});

test('global variables: a histogram, an array of them, counters, scalars, the config', () => {
  const text = renderMaps('table', [
    section('.bss', [
      { name: 'one', type: 'struct hist', value: { slots: [0, 2] } },
      { name: 'idle', type: 'struct hist[2]', value: [{ slots: [0] }, { slots: [0] }] },
      { name: 'zeros', type: '__u64[3]', value: [0, 0, 0] },
      { name: 'big', type: '__u64[2]', value: ['18446744073709551615', 0] },
      { name: 'comm', type: 'char[16]', value: 'node' },
      { name: 'pair', type: 'struct pair', value: { a: 1, b: 2 } },
    ]),
    { ...section('.rodata', [{ name: 'on', type: 'const volatile bool', value: true }]), object: 'b.bpf.o' },
  ]);
  assert.equal(
    text,
    [
      '.bss (global variables)',
      '  one (struct hist)',
      '         value               : count    distribution',
      '             0 -> 1          : 0        |                                        |',
      '             2 -> 3          : 2        |****************************************|',
      '  idle (struct hist[2]): (no values)',
      '  zeros (__u64[3]): all 3 are 0',
      '  big (__u64[2])',
      '    INDEX   VALUE',
      '    0       18446744073709551615',
      '    (1 more is 0)',
      '  comm (char[16]) = node',
      '  pair (struct pair) = {"a":1,"b":2}',
      '',
      '.rodata of b.bpf.o (config)',
      '  on (const volatile bool) = true',
      '',
    ].join('\n'),
  );
  assert.deepEqual(JSON.parse(renderMaps('json', [section('.data', [{ name: 'x', type: 'int', value: 3 }])])), [
    { name: '.data', type: 'array', entries: [], section: '.data', variables: [{ name: 'x', type: 'int', value: 3 }] },
  ]);
});

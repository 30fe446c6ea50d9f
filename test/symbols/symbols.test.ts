// The symbolizer (src/symbols): kernel addresses from a kallsyms file (unsorted, with modules,
// hidden addresses), user addresses of this process from its mappings and libc's ELF symbols.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readElfSymbols } from 'kbpf/bpf';
import { Symbolizer, symbols } from '../../src/symbols/index.js';
import { parseMaps } from '../../src/symbols/process.js';

test('kernel addresses: the symbol at or below, its module; before the first or far past the last: hex', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-syms-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(
    join(dir, 'kallsyms'),
    [
      'ffffffff81000200 T do_syscall_64',
      'ffffffff81000100 t entry_SYSCALL_64',
      'ffffffff81000300 D some_data',
      'ffffffffc0001000 t nf_hook_slow\t[nf_tables]',
      'ffffffff81000400 T after',
      '',
    ].join('\n'),
  );
  const s = new Symbolizer(dir);
  assert.deepEqual(
    s.frames([0xffffffff81000210n, '18446744071578845440', 0, 0xffffffffc0001004n, 0xffffffff81000001n]),
    ['do_syscall_64+0x10', 'entry_SYSCALL_64+0x0', 'nf_hook_slow+0x4 [nf_tables]', '0xffffffff81000001'],
  );
  // data symbols are not frames: the text symbol before
  assert.deepEqual(s.frames([0xffffffff81000301n]), ['do_syscall_64+0x101']);
  assert.deepEqual(s.frames([0xffffffff91000000n]), ['0xffffffff91000000'], 'past every symbol');
  // kptr_restrict: every address 0, nothing resolves
  writeFileSync(join(dir, 'kallsyms'), '0000000000000000 T do_syscall_64\n');
  assert.deepEqual(new Symbolizer(dir).frames([0xffffffff81000210n]), ['0xffffffff81000210']);
});

test('user addresses of this process: the libc function and its file; no pid or no mapping: hex', () => {
  const maps = parseMaps(readFileSync('/proc/self/maps', 'utf8'));
  const libc = maps.find((m) => /\/libc[.-][^/]*so/.test(m.path));
  if (!libc) return; // a static or musl build: nothing to look up
  const elf = readFileSync(libc.path);
  const sym = readElfSymbols(elf, 'dynsym').find((x) => x.name === 'getpid' && x.type === 'FUNC')!;
  assert.ok(sym, 'libc exports getpid');
  // the mapping that holds the symbol's file offset (text: vaddr = file offset in libc's layout)
  const m = maps.find(
    (x) => x.path === libc.path && sym.value >= x.offset && sym.value < x.offset + (x.end - x.start),
  )!;
  const addr = BigInt(m.start - m.offset + sym.value + 3);
  const [frame] = symbols.frames([addr], process.pid);
  assert.match(frame!, /^(__)?getpid\+0x3 \(libc\.so\.6\)$/);
  assert.deepEqual(symbols.frames([addr]), [`0x${addr.toString(16)}`], 'no process: hex');
  assert.deepEqual(symbols.frames([0x10n], process.pid), ['0x10'], 'not mapped');
});

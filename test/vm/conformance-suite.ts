// Drives bin/kbpf-conformance-plugin over a checkout of the bpf_conformance suite's tests
// (not part of CI: the suite's files are not ours to commit). Prints pass counts per group.
//   node dist/test/vm/conformance-suite.js DIR [--engine interpreter|wasm] [--in-process] [-v]
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { base16Encode, type PluginResult, runConformance } from '../../src/vm/conformance.js';
import type { EngineName } from '../../src/vm/engine.js';
import { encodeProgram } from '../../src/vm/insn.js';
import { groupOf, parseSuiteTest } from './suite-format.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const plugin = join(root, 'bin/kbpf-conformance-plugin');

function main(argv: string[]): number {
  const dir = argv.find((a) => !a.startsWith('-'));
  if (!dir) {
    process.stderr.write('usage: conformance-suite DIR [--engine interpreter|wasm] [--in-process] [-v]\n');
    return 2;
  }
  const engine = (argv.find((a) => a.startsWith('--engine='))?.slice(9) ?? 'interpreter') as EngineName;
  const inProcess = argv.includes('--in-process');
  const verbose = argv.includes('-v');
  const groups = new Map<string, { pass: number; total: number }>();
  const failures: string[] = [];
  let skipped = 0;
  for (const f of readdirSync(dir)
    .filter((x) => x.endsWith('.data'))
    .sort()) {
    let test: ReturnType<typeof parseSuiteTest>;
    try {
      test = parseSuiteTest(readFileSync(join(dir, f), 'utf8'));
    } catch (e) {
      failures.push(`${f}: does not assemble: ${e instanceof Error ? e.message : String(e)}`);
      const g = groups.get('unassembled') ?? { pass: 0, total: 0 };
      g.total++;
      groups.set('unassembled', g);
      continue;
    }
    if (!test) {
      skipped++;
      continue;
    }
    const program = encodeProgram(test.insns);
    let r: PluginResult;
    if (inProcess) r = runConformance({ program, memory: test.memory, engine });
    else {
      const args = [plugin, '--engine', engine];
      if (test.memory.length) args.push(base16Encode(test.memory));
      const p = spawnSync(process.execPath, args, { input: `${base16Encode(program)}\n`, encoding: 'utf8' });
      r = { code: p.status ?? -1, stdout: p.stdout, stderr: p.stderr };
    }
    let ok: boolean;
    let why = '';
    const out = r.stdout.replace(/\n$/, '');
    if (r.code !== 0) {
      const msg = out || r.stderr.replace(/\n$/, '');
      ok = test.error !== undefined && test.error === msg;
      why = `exit ${r.code}: ${msg}`;
    } else {
      ok = test.result !== undefined && /^[0-9a-f]+$/i.test(out) && BigInt(`0x${out}`) === test.result;
      why = `r0 ${out}, expected ${test.result === undefined ? `error ${test.error}` : `0x${test.result.toString(16)}`}`;
    }
    const group = groupOf(test.insns);
    const g = groups.get(group) ?? { pass: 0, total: 0 };
    g.total++;
    if (ok) g.pass++;
    else failures.push(`${f} [${group}]: ${why}`);
    groups.set(group, g);
    if (verbose) process.stderr.write(`${ok ? 'PASS' : 'FAIL'} ${f}\n`);
  }
  let pass = 0;
  let total = 0;
  for (const [name, g] of [...groups].sort()) {
    process.stdout.write(`${engine} ${name}: ${g.pass}/${g.total}\n`);
    pass += g.pass;
    total += g.total;
  }
  process.stdout.write(`${engine} total: ${pass}/${total}${skipped ? ` (${skipped} skipped: no result)` : ''}\n`);
  for (const f of failures) process.stdout.write(`  FAIL ${f}\n`);
  return failures.length ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));

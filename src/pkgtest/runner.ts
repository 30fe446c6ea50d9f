// `kbpf test`: every case of a package in the engines asked for. A case passes when every engine
// that can run it meets its expectations and, with more than one engine, they agree on r0, the
// packet, every value map entry and every record (a differential check, not only of r0). An
// engine that cannot run a case (the kernel for a sock_ops program, the VM for a helper it
// lacks) is reported as skipped for it, with why.
import { isKind, Unsupported } from '../errors.js';
import type { EngineName } from '../vm/engine.js';
import type { PackageTests } from './cases.js';
import { kernelCannotRun, runInKernel } from './kernel-run.js';
import { checkExpectations, compareObservations, type Observation } from './observation.js';
import { type PackageObject, type PreparedCase, prepareCase } from './prepare.js';
import { runInVm } from './vm-run.js';

export type TestEngine = 'vm' | 'interpreter' | 'kernel' | 'both';
export const TEST_ENGINES: readonly TestEngine[] = ['vm', 'interpreter', 'kernel', 'both'];
type RunEngine = 'vm' | 'interpreter' | 'kernel';

export type CaseStatus = 'pass' | 'fail' | 'skip' | 'error';

export interface CaseResult {
  file: string;
  name: string;
  program: string;
  /** program type (xdp, sched_cls, cgroup_sock_addr, …) */
  type?: string;
  status: CaseStatus;
  /** engines that ran it */
  ran: RunEngine[];
  skipped: { engine: RunEngine; reason: string }[];
  /** what did not match, each line prefixed with the engine(s) when several ran */
  failures: string[];
  /** r0 per engine that ran it */
  returns: Partial<Record<RunEngine, number>>;
  ms: number;
}

export interface TestReport {
  package: string;
  engine: TestEngine;
  cases: CaseResult[];
  passed: number;
  failed: number;
  skipped: number;
}

export interface TestInput {
  reference: string;
  objects: readonly PackageObject[];
  tests: PackageTests;
  /** config defaults of the package */
  defaults?: Record<string, unknown>;
  /** event map → record struct, from the package spec */
  eventTypes?: ReadonlyMap<string, string>;
}

export interface RunOptions {
  /** run only cases whose name (or file: name) contains this */
  filter?: string;
}

const ENGINES_OF: Record<TestEngine, RunEngine[]> = {
  vm: ['vm'],
  interpreter: ['interpreter'],
  kernel: ['kernel'],
  both: ['vm', 'kernel'],
};

const VM_ENGINE: Record<'vm' | 'interpreter', EngineName> = { vm: 'wasm', interpreter: 'interpreter' };

function observe(p: PreparedCase, engine: RunEngine): Observation {
  return engine === 'kernel' ? runInKernel(p) : runInVm(p, VM_ENGINE[engine]);
}

function runCase(input: TestInput, p: PreparedCase, engines: RunEngine[], r: CaseResult): void {
  const eventTypes = input.eventTypes ?? new Map();
  const seen: [RunEngine, Observation][] = [];
  const tag = (e: string, line: string) => (engines.length > 1 ? `[${e}] ${line}` : line);
  for (const e of engines) {
    const why = e === 'kernel' ? kernelCannotRun(p) : undefined;
    if (why) {
      r.skipped.push({ engine: e, reason: why });
      continue;
    }
    let o: Observation;
    try {
      o = observe(p, e);
    } catch (err) {
      if (isKind(err, Unsupported)) {
        r.skipped.push({ engine: e, reason: (err as Error).message });
        continue;
      }
      r.failures.push(tag(e, `run failed: ${(err as Error).message}`));
      r.ran.push(e);
      continue;
    }
    r.ran.push(e);
    r.returns[e] = o.r0;
    for (const f of checkExpectations(p, o, eventTypes)) r.failures.push(tag(e, f));
    seen.push([e, o]);
  }
  for (let i = 1; i < seen.length; i++) {
    const [ea, oa] = seen[0]!;
    const [eb, ob] = seen[i]!;
    for (const d of compareObservations(p, oa, ob, [ea, eb], eventTypes)) r.failures.push(`[${ea} ≠ ${eb}] ${d}`);
  }
}

export function runTests(input: TestInput, engine: TestEngine, opts: RunOptions = {}): TestReport {
  const engines = ENGINES_OF[engine];
  const cases: CaseResult[] = [];
  for (const c of input.tests.cases) {
    if (opts.filter && !`${c.file}: ${c.name}`.includes(opts.filter)) continue;
    const t0 = performance.now();
    const r: CaseResult = {
      file: c.file,
      name: c.name,
      program: c.program,
      status: 'pass',
      ran: [],
      skipped: [],
      failures: [],
      returns: {},
      ms: 0,
    };
    try {
      const p = prepareCase(c, input.objects, input.defaults);
      r.type = p.program.type;
      runCase(input, p, engines, r);
      r.status = r.failures.length ? 'fail' : r.ran.length ? 'pass' : 'skip';
    } catch (e) {
      r.status = 'error';
      r.failures.push((e as Error).message);
    }
    r.ms = Math.round((performance.now() - t0) * 10) / 10;
    cases.push(r);
  }
  return {
    package: input.reference,
    engine,
    cases,
    passed: cases.filter((c) => c.status === 'pass').length,
    failed: cases.filter((c) => c.status === 'fail' || c.status === 'error').length,
    skipped: cases.filter((c) => c.status === 'skip').length,
  };
}

// `npm run bench [-- NAME... ] [--duration=S] [--repeats=N] [--list]`
//
// Runs the benchmarks named on the command line (all of them by default, in file-name order;
// one that fails is reported and the others still run, exit status 1). A benchmark is a
// module in bench/ that exports `benchmark: Benchmark`; this runner finds them in its own
// directory (dist/bench/ after the build), so adding one is adding a file. Each benchmark prints
// its result lines (`key: value`) on stdout; progress and details go to stderr.
import { readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface BenchOptions {
  /** Seconds of each measured window (--duration, default 3). */
  durationS: number;
  /** Measured windows per variant; the median is reported (--repeats, default 3). */
  repeats: number;
  /** Arguments not understood by the runner, for the benchmark itself (e.g. --ringbuf-batch=64). */
  args: string[];
}

export interface Benchmark {
  name: string;
  description: string;
  run(opts: BenchOptions): Promise<void>;
}

/** Prints one result line on stdout: `key: value`. */
export function result(key: string, value: number | string): void {
  process.stdout.write(`${key}: ${value}\n`);
}

/** Prints a progress / detail line on stderr. */
export function note(line: string): void {
  process.stderr.write(`${line}\n`);
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const here = dirname(fileURLToPath(import.meta.url));

async function discover(): Promise<Map<string, Benchmark>> {
  const found = new Map<string, Benchmark>();
  const files = readdirSync(here)
    .filter((f) => f.endsWith('.js') && f !== basename(fileURLToPath(import.meta.url)))
    .sort();
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(here, f)).href)) as { benchmark?: Benchmark };
    if (mod.benchmark && typeof mod.benchmark.run === 'function') found.set(mod.benchmark.name, mod.benchmark);
  }
  return found;
}

async function main(argv: string[]): Promise<number> {
  const opts: BenchOptions = { durationS: 3, repeats: 3, args: [] };
  const names: string[] = [];
  let list = false;
  for (const a of argv) {
    const m = /^--([\w-]+)(?:=(.*))?$/.exec(a);
    if (!m) names.push(a);
    else if (m[1] === 'duration') opts.durationS = Number(m[2]);
    else if (m[1] === 'repeats') opts.repeats = Math.max(1, Math.floor(Number(m[2])));
    else if (m[1] === 'list') list = true;
    else opts.args.push(a);
  }
  if (!(opts.durationS > 0)) throw new Error('--duration must be a positive number of seconds');
  const all = await discover();
  if (list) {
    for (const b of all.values()) process.stdout.write(`${b.name}\t${b.description}\n`);
    return 0;
  }
  const unknown = names.filter((n) => !all.has(n));
  if (unknown.length) {
    note(`bench: unknown benchmark(s): ${unknown.join(', ')}; known: ${[...all.keys()].join(', ') || 'none'}`);
    return 2;
  }
  const selected = names.length ? names.map((n) => all.get(n)!) : [...all.values()];
  const failed: string[] = [];
  for (const b of selected) {
    note(`bench: ${b.name} — ${b.description} (${opts.repeats} × ${opts.durationS} s)`);
    // One benchmark failing must not hide the others' results: report it, go on, exit non-zero.
    try {
      await b.run(opts);
    } catch (e) {
      failed.push(b.name);
      note(`bench: ${b.name} failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    }
  }
  if (failed.length) note(`bench: failed: ${failed.join(', ')}`);
  return failed.length ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      note(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
      process.exitCode = 1;
    },
  );
}

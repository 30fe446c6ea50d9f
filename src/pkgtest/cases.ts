// The test cases of a package (docs/testing.md): `tests/*.yaml` beside the `.bpf.c`, read and
// checked at build time and carried in the package as one JSON layer (KBPF_TESTS). Values are
// kept as written (numbers, strings, objects); they are encoded with the object's BTF when a
// case runs (values.ts).
import { parse as parseYaml } from 'yaml';
import { InvalidError } from '../errors.js';
import { buildPacket, type PacketSpec } from './packet.js';

export interface MapEntrySpec {
  key?: unknown;
  /** in `expect.maps`: null = the key is absent */
  value: unknown;
}

export type MapsSpec = Record<string, MapEntrySpec[]>;

/** What the current task looks like to the program (bpf_get_current_* helpers). */
export interface TaskSpec {
  pid?: number;
  tgid?: number;
  uid?: number;
  gid?: number;
  comm?: string;
  cgroupId?: number | string;
  /** bpf_get_current_ancestor_cgroup_id(level) by level */
  ancestorCgroupIds?: Record<string, number | string>;
  socketCookie?: number | string;
  netnsCookie?: number | string;
  /** bpf_ktime_get_ns */
  ktimeNs?: number | string;
  /** bpf_get_prandom_u32 */
  prandom?: number;
}

export interface CaseExpect {
  /** r0 (the verdict): a number or a name (XDP_DROP, TC_ACT_SHOT, SK_PASS, …) */
  return?: number | string;
  /**
   * a cgroup program's return value to the syscall (bpf_set_retval; -EPERM when it refuses
   * without setting one, 0 when it allows): a number or a negative errno name (-ECONNREFUSED)
   */
  retval?: number | string;
  packet?: PacketSpec;
  /** ctx fields after the run (by name, BTF-decoded) */
  ctx?: Record<string, unknown>;
  maps?: MapsSpec;
  /** records of ring buffers / perf event arrays, by map: each a value of the event struct (fields given must match) */
  events?: Record<string, unknown[]>;
}

export interface TestCase {
  /** the file it came from, relative to the source directory */
  file: string;
  name: string;
  program: string;
  /** config variables (`const volatile` globals) */
  config?: Record<string, unknown>;
  packet?: PacketSpec;
  /** ctx fields before the run (by name) */
  ctx?: Record<string, unknown>;
  task?: TaskSpec;
  /** map contents before the run */
  maps?: MapsSpec;
  expect: CaseExpect;
}

/** What the KBPF_TESTS layer holds. */
export interface PackageTests {
  version: 1;
  cases: TestCase[];
}

export const TESTS_DIR = 'tests';
export const TESTS_LAYER_TITLE = 'tests.json';

const FILE_KEYS = ['program', 'config', 'task', 'maps', 'cases'];
const CASE_KEYS = ['name', 'program', 'config', 'packet', 'ctx', 'task', 'maps', 'expect'];
const EXPECT_KEYS = ['return', 'retval', 'packet', 'ctx', 'maps', 'events'];
const TASK_KEYS = [
  'pid',
  'tgid',
  'uid',
  'gid',
  'comm',
  'cgroupId',
  'ancestorCgroupIds',
  'socketCookie',
  'netnsCookie',
  'ktimeNs',
  'prandom',
];

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown, where: string, keys?: readonly string[]): Obj {
  if (!isObj(v)) throw new InvalidError(`${where}: expected a mapping`);
  if (keys) {
    const bad = Object.keys(v).find((k) => !keys.includes(k));
    if (bad) throw new InvalidError(`${where}: unknown key "${bad}" (known: ${keys.join(', ')})`);
  }
  return v;
}

function maps(v: unknown, where: string, expect: boolean): MapsSpec {
  const out: MapsSpec = {};
  for (const [name, entries] of Object.entries(obj(v, where))) {
    if (!Array.isArray(entries)) throw new InvalidError(`${where}.${name}: expected a list of {key, value}`);
    out[name] = entries.map((e, i) => {
      const o = obj(e, `${where}.${name}[${i}]`, ['key', 'value']);
      if (!('value' in o)) throw new InvalidError(`${where}.${name}[${i}]: no value`);
      if (o.value === null && !expect)
        throw new InvalidError(`${where}.${name}[${i}]: value null (absent) only in expect.maps`);
      return 'key' in o ? { key: o.key, value: o.value } : { value: o.value };
    });
  }
  return out;
}

function packet(v: unknown, where: string): PacketSpec {
  buildPacket(v as PacketSpec, where); // refuses what would not build
  return v as PacketSpec;
}

function parseCase(raw: unknown, i: number, file: string, defaults: Obj): TestCase {
  const label = isObj(raw) && typeof raw.name === 'string' ? `${file}: ${raw.name}` : `${file}: cases[${i}]`;
  const c = obj(raw, label, CASE_KEYS);
  if (typeof c.name !== 'string' || !c.name) throw new InvalidError(`${label}: a case needs a name`);
  const program = c.program ?? defaults.program;
  if (typeof program !== 'string' || !program)
    throw new InvalidError(`${label}: no program (give program: in the case or at the top of the file)`);
  const out: TestCase = { file, name: c.name, program, expect: {} };
  const config = { ...(defaults.config as Obj | undefined), ...(c.config ? obj(c.config, `${label}: config`) : {}) };
  if (Object.keys(config).length) out.config = config;
  if (c.packet !== undefined) out.packet = packet(c.packet, `${label}: packet`);
  if (c.ctx !== undefined) out.ctx = obj(c.ctx, `${label}: ctx`);
  const task = { ...(defaults.task as Obj | undefined), ...(c.task ? obj(c.task, `${label}: task`, TASK_KEYS) : {}) };
  if (Object.keys(task).length) out.task = task as TaskSpec;
  const before = {
    ...(defaults.maps as MapsSpec | undefined),
    ...(c.maps ? maps(c.maps, `${label}: maps`, false) : {}),
  };
  if (Object.keys(before).length) out.maps = before;
  const e = obj(c.expect ?? {}, `${label}: expect`, EXPECT_KEYS);
  if (e.return !== undefined) {
    if (typeof e.return !== 'number' && typeof e.return !== 'string')
      throw new InvalidError(`${label}: expect.return: a number or a name`);
    out.expect.return = e.return;
  }
  if (e.retval !== undefined) {
    if (typeof e.retval !== 'number' && typeof e.retval !== 'string')
      throw new InvalidError(`${label}: expect.retval: a number or a negative errno name`);
    out.expect.retval = e.retval;
  }
  if (e.packet !== undefined) out.expect.packet = packet(e.packet, `${label}: expect.packet`);
  if (e.ctx !== undefined) out.expect.ctx = obj(e.ctx, `${label}: expect.ctx`);
  if (e.maps !== undefined) out.expect.maps = maps(e.maps, `${label}: expect.maps`, true);
  if (e.events !== undefined) {
    const ev = obj(e.events, `${label}: expect.events`);
    for (const [m, list] of Object.entries(ev))
      if (!Array.isArray(list)) throw new InvalidError(`${label}: expect.events.${m}: expected a list of records`);
    out.expect.events = ev as Record<string, unknown[]>;
  }
  return out;
}

/** Parses one tests/*.yaml file; `file` is its path relative to the source directory. */
export function parseTestFile(text: string, file: string): TestCase[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new InvalidError(`${file}: not YAML: ${(e as Error).message}`);
  }
  const top = obj(doc ?? {}, file, FILE_KEYS);
  if (top.config !== undefined) obj(top.config, `${file}: config`);
  if (top.task !== undefined) obj(top.task, `${file}: task`, TASK_KEYS);
  const defaults: Obj = { ...top, maps: top.maps === undefined ? undefined : maps(top.maps, `${file}: maps`, false) };
  if (!Array.isArray(top.cases) || top.cases.length === 0) throw new InvalidError(`${file}: no cases`);
  const cases = top.cases.map((c, i) => parseCase(c, i, file, defaults));
  const names = new Set<string>();
  for (const c of cases) {
    if (names.has(c.name)) throw new InvalidError(`${file}: two cases named "${c.name}"`);
    names.add(c.name);
  }
  return cases;
}

/** Reads the KBPF_TESTS layer of a package. */
export function readPackageTests(bytes: Uint8Array, where: string): PackageTests {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new InvalidError(`${where}: tests layer is not JSON: ${(e as Error).message}`);
  }
  if (!isObj(doc) || doc.version !== 1 || !Array.isArray(doc.cases))
    throw new InvalidError(`${where}: tests layer: expected {version: 1, cases: [...]}`);
  const cases = doc.cases.map((c, i) => {
    const { file, ...rest } = obj(c, `${where}: tests layer: cases[${i}]`);
    return parseCase(rest, i, String(file ?? TESTS_DIR), {});
  });
  return { version: 1, cases };
}

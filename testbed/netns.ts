// Test helpers for network namespaces: fresh namespaces (`ip netns add`), veth pairs between
// them (or between the root namespace and one of them), commands run inside a namespace
// (`ip netns exec`), and teardown registered with the test's cleanup so it also runs on failure.
// Addresses come from 10.x test ranges and are only ever set inside namespaces a test created.

import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { bpftoolShow, type Cleanup, type RunResult, uniqueName } from './kernel.js';

/**
 * Runs a command to its end and collects its output. (Like kernel.ts's run, but stdin is
 * /dev/null unless input is given, so a command that exits at once cannot raise EPIPE.)
 */
export function run(
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 10_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {}); // the command may exit before reading its input
      child.stdin.end(opts.input);
    }
  });
}

async function ip(args: string[]): Promise<RunResult> {
  const r = await run('ip', args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`);
  return r;
}

/** Path of a named namespace, as inNetns() and setns(2) take it. */
export function netnsPath(name: string): string {
  return `/run/netns/${name}`;
}

/** Removes a namespace made by makeNetns (its interfaces, and so veth peers, go with it). */
export async function removeNetns(name: string): Promise<void> {
  if (!existsSync(netnsPath(name))) return;
  const r = await run('ip', ['netns', 'del', name]);
  if (r.code !== 0 && existsSync(netnsPath(name))) throw new Error(`ip netns del ${name} failed: ${r.stderr.trim()}`);
}

/**
 * A fresh network namespace named kbpf-PID-RAND (lo up, IPv6 off so the only traffic is what
 * the test sends, plus ARP). Deleted at cleanup.
 */
export async function makeNetns(t: Cleanup, prefix = 'kbpf'): Promise<string> {
  const name = uniqueName(prefix);
  await ip(['netns', 'add', name]);
  t.after(() => removeNetns(name));
  await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  await execInNetns(name, 'sh', [
    '-c',
    'for f in /proc/sys/net/ipv6/conf/all/disable_ipv6 /proc/sys/net/ipv6/conf/default/disable_ipv6; do [ -w $f ] && echo 1 > $f; done; true',
  ]);
  return name;
}

/** Runs a command inside a namespace (ip netns exec); never throws on a non-zero exit. */
export function execInNetns(
  netns: string,
  cmd: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return run('ip', ['netns', 'exec', netns, cmd, ...args], opts);
}

/** One end of a veth pair. netns null means the root namespace (which gets no address). */
export interface VethEnd {
  netns: string | null;
  ifname: string;
  /** IPv4 address without prefix (null for the root-namespace end) */
  addr: string | null;
  /** address with prefix length, e.g. 10.213.7.1/24 */
  cidr: string | null;
  ifindex: number;
  mac: string;
}

export interface VethPair {
  a: VethEnd;
  b: VethEnd;
  /** the /24 both ends' addresses are in */
  subnet: string;
}

/** A random /24 in 10.200.0.0 - 10.250.255.0 for one test's veth pair. */
export function testSubnet(): string {
  return `10.${randomInt(200, 251)}.${randomInt(0, 256)}`;
}

async function linkDetails(netns: string | null, ifname: string): Promise<{ ifindex: number; mac: string }> {
  const r = await ip([...(netns ? ['-n', netns] : []), '-j', 'link', 'show', 'dev', ifname]);
  const [l] = JSON.parse(r.stdout) as { ifindex: number; address: string }[];
  if (!l) throw new Error(`no interface ${ifname} in ${netns ?? 'the root namespace'}`);
  return { ifindex: l.ifindex, mac: l.address };
}

/**
 * A veth pair between namespace a (or the root namespace when a is null) and namespace b, both
 * ends up. Inside a namespace the end is called `veth0` (names are per namespace); in the root
 * namespace it gets a unique name. Ends inside namespaces get SUBNET.1/24 (a) and SUBNET.2/24 (b).
 * The root-namespace end is deleted at cleanup; ends inside namespaces go with the namespace.
 */
export async function makeVethPair(
  t: Cleanup,
  a: string | null,
  b: string,
  opts: { subnet?: string; ifname?: string } = {},
): Promise<VethPair> {
  if (a === b) throw new Error('makeVethPair: both ends in the same namespace');
  const subnet = opts.subnet ?? testSubnet();
  const inNs = opts.ifname ?? 'veth0';
  const nameA = a ? inNs : `kb${process.pid.toString(36)}${randomInt(0, 36 ** 4).toString(36)}`.slice(0, 15);
  const nameB = inNs;
  await ip(['link', 'add', nameA, ...(a ? ['netns', a] : []), 'type', 'veth', 'peer', 'name', nameB, 'netns', b]);
  if (!a) {
    t.after(async () => {
      if (existsSync(`/sys/class/net/${nameA}`)) await run('ip', ['link', 'del', nameA]);
    });
  }
  const ends: VethEnd[] = [];
  for (const [ns, name, host] of [
    [a, nameA, 1],
    [b, nameB, 2],
  ] as const) {
    const nsArgs = ns ? ['-n', ns] : [];
    const cidr = ns ? `${subnet}.${host}/24` : null;
    if (cidr) await ip([...nsArgs, 'addr', 'add', cidr, 'dev', name]);
    await ip([...nsArgs, 'link', 'set', name, 'up']);
    const d = await linkDetails(ns, name);
    ends.push({ netns: ns, ifname: name, addr: cidr ? cidr.split('/')[0]! : null, cidr, ...d });
  }
  return { a: ends[0]!, b: ends[1]!, subnet: `${subnet}.0/24` };
}

/** Two fresh namespaces joined by a veth pair (a: SUBNET.1, b: SUBNET.2). */
export async function makeNetnsPair(t: Cleanup, prefix = 'kbpf'): Promise<VethPair & { nsA: string; nsB: string }> {
  const nsA = await makeNetns(t, prefix);
  const nsB = await makeNetns(t, prefix);
  const pair = await makeVethPair(t, nsA, nsB);
  return { ...pair, nsA, nsB };
}

/** Our namespaces still listed by `ip netns list` (for leak checks). */
export async function listNetns(prefix = 'kbpf'): Promise<string[]> {
  const r = await run('ip', ['-j', 'netns', 'list']);
  const list = JSON.parse(r.stdout.trim() || '[]') as { name: string }[];
  return list.map((n) => n.name).filter((n) => n.startsWith(`${prefix}-${process.pid}-`));
}

export interface PingResult extends RunResult {
  transmitted: number;
  received: number;
}

/** Pings addr from inside netns: count echo requests, `intervalS` apart, each waiting waitS. */
export async function ping(
  netns: string,
  addr: string,
  opts: { count?: number; intervalS?: number; waitS?: number } = {},
): Promise<PingResult> {
  const count = opts.count ?? 3;
  const r = await execInNetns(
    netns,
    'ping',
    ['-n', '-q', '-c', String(count), '-i', String(opts.intervalS ?? 0.2), '-W', String(opts.waitS ?? 1), addr],
    { timeoutMs: 30_000 },
  );
  if (/exec of "ping" failed|not found/i.test(r.stderr))
    throw new Error(`ping is not installed (Debian package iputils-ping): ${r.stderr.trim()}`);
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  return { ...r, transmitted: m ? Number(m[1]) : 0, received: m ? Number(m[2]) : 0 };
}

// ---- leak check by id ----------------------------------------------------------------------
// Tests here record the kernel ids of exactly what they made (programs, maps, links) and check
// at the end that bpftool lists none of them, which stays exact while other tests or engineers
// load BPF on the same machine at the same time.

export interface MadeIds {
  prog: number[];
  map: number[];
  link: number[];
}

export function madeIds(): MadeIds {
  return { prog: [], map: [], link: [] };
}

/** Ids of an object's programs and maps (call after load). */
export function idsOfObject(
  made: MadeIds,
  obj: { programs: ReadonlyMap<string, { loaded: boolean; id: number }>; maps: ReadonlyMap<string, { id: number }> },
): void {
  for (const p of obj.programs.values()) if (p.loaded) made.prog.push(p.id);
  for (const m of obj.maps.values()) made.map.push(m.id);
}

function bpftoolList(kind: 'prog' | 'map' | 'link'): Set<number> {
  return new Set(bpftoolShow(kind).map((o) => o.id as number));
}

/** Which of the given ids bpftool still lists (waits up to waitMs for deferred frees). */
export async function stillListed(made: MadeIds, waitMs = 3000): Promise<MadeIds> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const now = { prog: bpftoolList('prog'), map: bpftoolList('map'), link: bpftoolList('link') };
    const left = {
      prog: made.prog.filter((id) => now.prog.has(id)),
      map: made.map.filter((id) => now.map.has(id)),
      link: made.link.filter((id) => now.link.has(id)),
    };
    if ((left.prog.length === 0 && left.map.length === 0 && left.link.length === 0) || Date.now() > deadline)
      return left;
    await sleep(50);
  }
}

/** bpftool's JSON view of one link, or undefined if it is not listed. */
export function bpftoolLink(id: number): Record<string, unknown> | undefined {
  return bpftoolShow('link').find((l) => l.id === id);
}

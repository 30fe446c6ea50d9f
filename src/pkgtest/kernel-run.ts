// Running a prepared case in the kernel through BPF_PROG_TEST_RUN: the object opened with the
// case's config, loaded, its maps filled, the program run once on the packet, then the value maps
// and ring buffers read back as raw bytes. Only the program types the kernel can test-run with a
// packet (xdp, tc, socket filter) are run here.
import {
  type BpfMap,
  BpfObject,
  MAP_UPDATE_ELEM,
  numPossibleCpus,
  RingBufferReader,
  rawMapOperate,
  testRun,
} from 'kbpf/bpf';
import { KbpfError, Unsupported } from '../errors.js';
import type { Observation } from './observation.js';

const unsupported = (message: string, opts: { cause?: unknown } = {}) => new KbpfError(Unsupported, message, opts);

import type { PreparedCase } from './prepare.js';

export const KERNEL_TEST_RUN_TYPES: readonly string[] = ['xdp', 'sched_cls', 'sched_act', 'socket_filter'];

const VALUE_MAPS = new Set(['array', 'percpu_array', 'hash', 'percpu_hash', 'lru_hash', 'lru_percpu_hash']);
const PERCPU = new Set(['percpu_array', 'percpu_hash', 'lru_percpu_hash']);
const ETH_HLEN = 14;
/** sizeof(struct __sk_buff): a zero ctx is given to skb programs so their ctx comes back */
const SK_BUFF_SIZE = 192;
const slotOf = (size: number) => Math.ceil(size / 8) * 8;

/** Why the kernel cannot run the case's program, or undefined when it can. */
export function kernelCannotRun(p: PreparedCase): string | undefined {
  if (!KERNEL_TEST_RUN_TYPES.includes(p.program.type))
    return `${p.program.type} programs (${p.program.section}) cannot be test-run in the kernel (BPF_PROG_TEST_RUN takes xdp, tc and socket filter packets here)`;
  if (!p.packet) return 'the case gives no packet';
  if (p.packet.length < ETH_HLEN) return 'the kernel refuses test packets shorter than an Ethernet header (14 bytes)';
  return undefined;
}

function perCpuBuffer(value: Uint8Array, size: number): Uint8Array {
  const slot = slotOf(size);
  const out = new Uint8Array(slot * numPossibleCpus());
  for (let c = 0; c < numPossibleCpus(); c++) out.set(value, c * slot);
  return out;
}

/** The entries of a value map; for per-CPU maps the value of the CPU that changed (else CPU 0). */
function readEntries(m: BpfMap, before: Map<string, Uint8Array>): { key: Uint8Array; value: Uint8Array }[] {
  const out: { key: Uint8Array; value: Uint8Array }[] = [];
  for (const k of m.rawKeys()) {
    const raw = m.lookupRaw(k);
    if (!raw) continue;
    let value = new Uint8Array(raw.subarray(0, m.valueSize));
    if (PERCPU.has(m.type)) {
      const slot = slotOf(m.valueSize);
      const was = before.get(Buffer.from(k).toString('hex')) ?? new Uint8Array(m.valueSize);
      for (let c = 0; c < numPossibleCpus(); c++) {
        const v = raw.subarray(c * slot, c * slot + m.valueSize);
        if (!Buffer.from(v).equals(Buffer.from(was))) {
          value = new Uint8Array(v);
          break;
        }
      }
    }
    out.push({ key: new Uint8Array(k), value });
  }
  return out;
}

export function runInKernel(p: PreparedCase): Observation {
  const why = kernelCannotRun(p);
  if (why) throw unsupported(why);
  const obj = BpfObject.open(p.object.bytes, { name: p.object.file.replace(/\.bpf\.o$|\.o$/, '') });
  try {
    for (const g of p.globals) obj.setGlobal(g.name, g.value);
    obj.load();
    const before = new Map<string, Map<string, Uint8Array>>();
    for (const e of p.entries) {
      const m = obj.map(e.map);
      const value = PERCPU.has(m.type) ? perCpuBuffer(e.value, m.valueSize) : e.value;
      const rc = rawMapOperate(m.fd, MAP_UPDATE_ELEM, e.key, value, null, 0);
      if (rc) throw unsupported(`fill map ${e.map} in the kernel: errno ${-rc}`);
      const b = before.get(e.map) ?? new Map<string, Uint8Array>();
      b.set(Buffer.from(e.key).toString('hex'), e.value);
      before.set(e.map, b);
    }
    const prog = obj.program(p.program.name);
    const r = testRun(prog, {
      data: p.packet!,
      ...(p.program.type !== 'xdp' ? { ctx: p.ctx ?? new Uint8Array(SK_BUFF_SIZE) } : {}),
    });
    const obs: Observation = { r0: r.retval >>> 0, maps: new Map(), events: new Map(), unobserved: [] };
    if (r.dataOut) obs.packet = new Uint8Array(r.dataOut);
    if (r.ctxOut) obs.ctx = new Uint8Array(r.ctxOut);
    for (const [name, m] of obj.maps) {
      if (VALUE_MAPS.has(m.type) && !name.endsWith('.rodata') && !/\.rodata/.test(name))
        obs.maps.set(mapName(name), readEntries(m, before.get(mapName(name)) ?? new Map()));
      else if (m.type === 'ringbuf') obs.events.set(name, readRing(m));
      else if (m.type === 'perf_event_array') obs.unobserved!.push(name);
    }
    return obs;
  } finally {
    obj.close();
  }
}

/** libbpf names an object's data section maps "<object>.bss"; the VM names them ".bss". */
function mapName(name: string): string {
  const m = /\.(rodata|data|bss)(\..*)?$/.exec(name);
  return m && !name.startsWith('.') ? m[0] : name;
}

function readRing(m: BpfMap): Uint8Array[] {
  const out: Uint8Array[] = [];
  const reader = new RingBufferReader(m, { decode: 'raw', ref: false });
  try {
    reader.consumeRaw((view, off, len) => {
      out.push(new Uint8Array(view.buffer, view.byteOffset + off, len).slice());
    });
  } finally {
    reader.close();
  }
  return out;
}

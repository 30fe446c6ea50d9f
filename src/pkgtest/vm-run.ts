// Running a prepared case in the user-space engine (Wasm compiler or interpreter): a fresh VM
// per case with the object loaded leniently (a map or program the engine lacks fails only the
// cases that use it), the task helpers answering for the case's task, and the observation read
// back as raw bytes.

import { KbpfError, Unsupported } from '../errors.js';
import { PACKET_HELPERS, PACKET_PROGRAM_TYPES, runContext, runPacket } from '../vm/ctx.js';
import { loadVmObject } from '../vm/elf.js';
import type { EngineName } from '../vm/engine.js';
import { VmPerfEventArray, VmRingbuf, VmValueMap } from '../vm/maps.js';
import { taskHelpers } from '../vm/task-helpers.js';
import { Vm } from '../vm/vm.js';
import type { Observation } from './observation.js';

const unsupported = (message: string, opts: { cause?: unknown } = {}) => new KbpfError(Unsupported, message, opts);

import type { PreparedCase } from './prepare.js';

const NO_CTX_SIZE = 256;

export function runInVm(p: PreparedCase, engine: EngineName): Observation {
  const helpers = new Map([...PACKET_HELPERS, ...taskHelpers(p.task)]);
  const vm = new Vm({
    engine,
    helpers,
    now: () => BigInt(p.case.task?.ktimeNs ?? 0),
    random: () => p.case.task?.prandom ?? 4,
  });
  const loaded = loadVmObject(vm, p.object.bytes, { lenient: true });
  const why = loaded.unloadable.get(p.program.name);
  if (why) throw unsupported(`the user-space engine cannot load ${p.program.name}: ${why.message}`, { cause: why });
  for (const g of p.globals) {
    const m = vm.map(g.section) as VmValueMap;
    vm.mem.u8.set(g.bytes, m.base + g.offset);
  }
  for (const e of p.entries) {
    const m = vm.map(e.map);
    if (!(m instanceof VmValueMap))
      throw unsupported(`map ${e.map} (${m.spec.type}) cannot be filled in the user-space engine`);
    m.set(e.key, e.value);
  }
  const obs: Observation = { r0: 0, maps: new Map(), events: new Map() };
  const type = p.program.type;
  if (PACKET_PROGRAM_TYPES.includes(type)) {
    const ctxFields = p.ctx ? readSkbFields(p.ctx, type) : {};
    const r = runPacket(vm, p.program.name, type, { data: p.packet ?? new Uint8Array(0), ...ctxFields });
    obs.r0 = r.retval;
    obs.packet = r.data;
    obs.ctx = r.ctx;
  } else {
    const r = runContext(vm, p.program.name, p.ctx ?? new Uint8Array(NO_CTX_SIZE));
    obs.r0 = Number(BigInt.asUintN(32, r.r0));
    obs.ctx = r.ctx;
    if (type.startsWith('cgroup')) obs.retval = syscallRetval(obs.r0, vm.retval);
  }
  for (const m of vm.maps) {
    if (m instanceof VmValueMap && !m.spec.readOnly)
      obs.maps.set(
        m.name,
        m.keys().flatMap((k) => {
          const v = m.get(k);
          return v ? [{ key: k, value: v }] : [];
        }),
      );
    if (m instanceof VmRingbuf || m instanceof VmPerfEventArray)
      obs.events.set(
        m.name,
        m.drain().map((r) => r.data),
      );
  }
  obs.trace = [...vm.traceLines];
  return obs;
}

const EPERM = 1;
const MAX_ERRNO = 4095;

/**
 * What the syscall gets from a cgroup program, as the kernel's cgroup run array makes it: the
 * value bpf_set_retval set (0 if none), turned into -EPERM when the program refuses (r0 bit 0
 * clear) without having set an error.
 */
function syscallRetval(r0: number, retval: number): number {
  const isError = retval < 0 && retval >= -MAX_ERRNO;
  return !(r0 & 1) && !isError ? -EPERM : retval;
}

/** The fields runPacket takes from a case's ctx (xdp_md or __sk_buff bytes). */
function readSkbFields(
  ctx: Uint8Array,
  type: string,
): { mark?: number; priority?: number; ifindex?: number; rxQueue?: number } {
  const dv = new DataView(ctx.buffer, ctx.byteOffset, ctx.byteLength);
  const u32 = (at: number) => (at + 4 <= ctx.length ? dv.getUint32(at, true) : 0);
  if (type === 'xdp') return { ifindex: u32(12) || 1, rxQueue: u32(16) };
  return { mark: u32(8), priority: u32(32), ifindex: u32(40) || 1 };
}

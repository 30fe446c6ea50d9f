// Program order on shared hooks (kbpf.yaml programs.X.order): where a program goes among the
// programs other instances have on the same cgroup or tcx hook, and, for inspect, every program
// on each hook of an instance in the order the kernel runs them (ours and anyone else's).
//
// The order is taken when the program is attached: `before: X` puts it before the first of X's
// programs on that hook, `after: X` after the last of them, `priority: N` before the first
// program whose instance declared a higher priority (else after the last with a lower or equal
// one). Programs of instances that declare nothing stay where they are; an instance named but not
// on the hook (not running yet) leaves the kernel's default, the end. An instance attached later
// goes to the end unless it declares its own order — to hold whatever starts first, declare it
// on both sides (A: before B, B: after A) or give both a priority.
import {
  cgroupHookPrograms,
  type HookPosition,
  type HookPrograms,
  infoOfId,
  type Program,
  tcxHookPrograms,
} from 'kbpf/bpf';
import {
  type AttachOverrides,
  type AttachSpec,
  describeAttach,
  effectiveOrder,
  type ProgramSpec,
} from '../package/package-spec.js';
import type { InstanceView } from './instance-view.js';
import type { PeerProgram } from './planner.js';
import type { HookProgram } from './types.js';

/** The running programs of every instance but `self`, with where they attach. */
export function peerPrograms(views: Iterable<InstanceView>, self: string): PeerProgram[] {
  const out: PeerProgram[] = [];
  for (const v of views) {
    if (v.name === self || v.phase !== 'running' || !v.spec || !v.choices) continue;
    for (const p of v.spec.programs) {
      const progId = v.ids.progs.get(p.name);
      const linkId = v.ids.links.get(p.name);
      const choice = v.choices.programs.get(p.name);
      if (progId === undefined || linkId === undefined || choice?.state !== 'run') continue;
      const order = effectiveOrder(p, v.revision?.attach);
      out.push({ instance: v.name, program: p.name, progId, linkId, attach: choice.attach, order });
    }
  }
  return out;
}

/** The programs on the hook `attach` names (cgroup: the attach type is the program's). */
function hookPrograms(attach: AttachSpec, attachType: string): HookPrograms | undefined {
  if (attach.hook === 'cgroup' && attach.target) return cgroupHookPrograms(attach.target, attachType);
  if (attach.hook === 'tc' && attach.target) return tcxHookPrograms(attach.target, attach.direction);
  return undefined;
}

/** Where `p` (loaded as `prog`, attaching to `attach`) goes among the programs on its hook. */
export function positionFor(
  p: ProgramSpec,
  attach: AttachSpec,
  prog: Program,
  peers: PeerProgram[],
  overrides?: AttachOverrides,
): HookPosition | undefined {
  const order = effectiveOrder(p, overrides);
  if (!order) return undefined;
  const live = hookPrograms(attach, prog.expectedAttachType)?.progIds ?? [];
  const key = describeAttach(attach);
  const onHook = peers.filter((x) => describeAttach(x.attach) === key && live.includes(x.progId));
  // the first / last of these programs in run order, by the link that holds it
  const first = (xs: PeerProgram[]) => xs.reduce((a, b) => (live.indexOf(b.progId) < live.indexOf(a.progId) ? b : a));
  const last = (xs: PeerProgram[]) => xs.reduce((a, b) => (live.indexOf(b.progId) > live.indexOf(a.progId) ? b : a));
  if ('before' in order) {
    const theirs = onHook.filter((x) => x.instance === order.before);
    return theirs.length ? { before: first(theirs).linkId } : undefined;
  }
  if ('after' in order) {
    const theirs = onHook.filter((x) => x.instance === order.after);
    return theirs.length ? { after: last(theirs).linkId } : undefined;
  }
  const ranked = onHook.filter((x) => x.order && 'priority' in x.order) as (PeerProgram & {
    order: { priority: number };
  })[];
  const later = ranked.filter((x) => x.order.priority > order.priority);
  if (later.length) return { before: first(later).linkId };
  return ranked.length ? { after: last(ranked).linkId } : undefined;
}

/** Every program on the hooks of an instance's ordered-hook programs (cgroup, tcx), in run order. */
export function hookOrders(
  view: InstanceView,
  views: Iterable<InstanceView>,
): { attach: string; programs: HookProgram[] }[] {
  if (!view.spec || !view.choices || view.phase !== 'running') return [];
  const owners = new Map<number, { instance: string; program: string }>();
  for (const v of views)
    for (const [program, id] of v.ids.progs) if (v.phase === 'running') owners.set(id, { instance: v.name, program });
  const out: { attach: string; programs: HookProgram[] }[] = [];
  const seen = new Set<string>();
  for (const p of view.spec.programs) {
    const choice = view.choices.programs.get(p.name);
    const linkId = view.ids.links.get(p.name);
    if (choice?.state !== 'run' || linkId === undefined) continue;
    if (choice.attach.hook !== 'cgroup' && choice.attach.hook !== 'tc') continue;
    const attach = describeAttach(choice.attach);
    if (seen.has(attach)) continue;
    seen.add(attach);
    try {
      const type = infoOfId('link', linkId)?.attachType;
      const listed = type ? hookPrograms(choice.attach, type) : undefined;
      if (!listed) continue;
      out.push({
        attach,
        programs: listed.progIds.map((progId) => {
          const owner = owners.get(progId);
          return owner ? { progId, ...owner } : { progId, name: infoOfId('prog', progId)?.name ?? '?' };
        }),
      });
    } catch {
      // the hook went away (a removed cgroup or interface): nothing to show
    }
  }
  return out;
}

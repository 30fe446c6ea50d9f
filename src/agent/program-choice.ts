// Which programs of a package run on this node, decided from the kernel's feature probes
// before anything is loaded:
//   - variants: programs on the same kernel function or event through different hooks
//     (fentry/kprobe, fexit/kretprobe, tp_btf/raw_tracepoint/tracepoint), or of one `group` of
//     kbpf.yaml, are alternatives: the best hook this kernel supports runs, the others are
//     disabled (not loaded);
//   - a program this kernel cannot run is skipped with a warning when it is optional, or when
//     only its function or tracepoint is missing here and other programs remain;
//   - otherwise the run fails naming the missing feature, before anything is loaded.
import { type HookSupport, hookSupport, type KernelHook, kernelHasFunction, kernelHasTracepoint } from 'kbpf/bpf';
import { InvalidError, KbpfError, Unsupported } from '../errors.js';
import {
  type AttachOverrides,
  type AttachSpec,
  attachTarget,
  type HookName,
  type PackageSpec,
  type ProgramSpec,
  resolveAttach,
  TARGET_FORMS,
} from '../package/package-spec.js';

export type ProgramState = 'run' | 'disabled' | 'skipped';

export interface ProgramChoice {
  name: string;
  state: ProgramState;
  /** where it attaches (overrides applied) */
  attach: AttachSpec;
  /** why it runs over its variants, or why it does not run */
  reason?: string;
}

export interface ProgramChoices {
  programs: Map<string, ProgramChoice>;
  /** what the instance runs without, for its status */
  warnings: string[];
}

/** What the choice asks of the kernel (a test gives its own). */
export interface KernelView {
  hook(h: KernelHook): HookSupport;
  hasFunction(name: string): boolean;
  hasTracepoint(name: string): boolean;
}

export const thisKernel: KernelView = {
  hook: hookSupport,
  hasFunction: kernelHasFunction,
  hasTracepoint: kernelHasTracepoint,
};

/** The kernel feature each hook needs (hooks missing here need none beyond their program type). */
const FEATURE: Partial<Record<HookName, KernelHook>> = {
  kprobe: 'kprobe',
  kretprobe: 'kprobe',
  ksyscall: 'kprobe',
  kretsyscall: 'kprobe',
  kprobe_multi: 'kprobe_multi',
  kretprobe_multi: 'kprobe_multi',
  uprobe: 'uprobe',
  uretprobe: 'uprobe',
  usdt: 'uprobe',
  fentry: 'fentry',
  fexit: 'fentry',
  fmod_ret: 'fentry',
  fsession: 'fsession',
  fentry_multi: 'fentry_multi',
  fexit_multi: 'fentry_multi',
  fsession_multi: 'fsession_multi',
  tp_btf: 'tp_btf',
  lsm: 'lsm',
  iter: 'iter',
  tracepoint: 'tracepoint',
  raw_tracepoint: 'raw_tracepoint',
  perf_event: 'perf_event',
  sk_lookup: 'sk_lookup',
  flow_dissector: 'flow_dissector',
  netfilter: 'netfilter',
  struct_ops: 'struct_ops',
};

/** uprobe.multi sections: one link on many functions, a kernel feature of its own */
export const MULTI_SECTION = /^u(ret)?probe\.multi(\.s)?(\/|$)/;
/** uprobe.session sections: a uprobe.multi link whose program runs at entry and at return */
export const SESSION_SECTION = /^uprobe\.session(\.s)?(\/|$)/;

/** Hooks whose target the object's BTF ids fix at build time (libbpf resolves them at open). */
const BTF_FIXED = new Set<HookName>([
  'fentry',
  'fexit',
  'fmod_ret',
  'fsession',
  'tp_btf',
  'lsm',
  'iter',
  'ksyscall',
  'kretsyscall',
  'kprobe_multi',
  'kretprobe_multi',
]);

/** Better hooks first: of variants, the lowest tier this kernel supports runs. */
const TIER: Partial<Record<HookName, number>> = {
  fentry: 0,
  fexit: 0,
  fmod_ret: 0,
  tp_btf: 0,
  lsm: 0,
  kprobe: 1,
  kretprobe: 1,
  ksyscall: 1,
  kretsyscall: 1,
  kprobe_multi: 1,
  kretprobe_multi: 1,
  raw_tracepoint: 1,
  tracepoint: 2,
};

const SYSCALL_FUNCTION = /^__(?:x64|ia32|arm64|s390x|riscv|se)_sys_(\w+)$/;

/** The function or event a program observes, when its hook has variants ("entry do_unlinkat"). */
function variantKey(a: AttachSpec): string | undefined {
  const target = attachTarget(a);
  if (!target) return undefined;
  const fn = target.replace(/\+.*$/, '');
  const sys = SYSCALL_FUNCTION.exec(fn)?.[1];
  switch (a.hook) {
    case 'fentry':
    case 'kprobe':
      return sys ? `entry of syscall ${sys}` : `entry of ${fn}`;
    case 'ksyscall':
      return `entry of syscall ${target}`;
    case 'fexit':
    case 'kretprobe':
      return sys ? `exit of syscall ${sys}` : `exit of ${fn}`;
    case 'kretsyscall':
      return `exit of syscall ${target}`;
    case 'tp_btf':
    case 'raw_tracepoint':
      return `event ${target}`;
    case 'tracepoint':
      return `event ${target.slice(target.indexOf('/') + 1)}`;
    default:
      return undefined;
  }
}

function where(p: ProgramSpec, a: AttachSpec): string {
  const t = attachTarget(a);
  return `${p.name} (${a.hook}${t ? ` ${t}` : ''})`;
}

interface Verdict {
  ok: boolean;
  /** only its function or tracepoint is missing: skippable when others remain */
  missingTarget?: boolean;
  why?: string;
}

function verdict(p: ProgramSpec, a: AttachSpec, kernel: KernelView): Verdict {
  // a bare kprobe on a kernel without kprobes: the missing feature, not the missing target
  if ((a.hook === 'kprobe' || a.hook === 'kretprobe') && a.target === undefined) {
    const s = kernel.hook('kprobe');
    if (s.supported === 'no') return { ok: false, why: s.detail };
  }
  if (
    (a.hook === 'uprobe' ||
      a.hook === 'uretprobe' ||
      a.hook === 'usdt' ||
      a.hook === 'netfilter' ||
      a.hook === 'tracepoint' ||
      a.hook === 'raw_tracepoint' ||
      a.hook === 'kprobe' ||
      a.hook === 'kretprobe') &&
    a.target === undefined
  ) {
    throw new InvalidError(
      `program ${p.name} (section "${p.section}") attaches to a ${a.hook} but names no target: give one with --attach ${p.name}=${TARGET_FORMS[a.hook]!.replace(/, e\.g\. .*$/, '')}`,
      { hint: `e.g. --attach ${p.name}=${TARGET_FORMS[a.hook]!.replace(/^.*e\.g\. /, '')}` },
    );
  }
  if (BTF_FIXED.has(a.hook) && a.hook === p.attach.hook && attachTarget(a) !== attachTarget(p.attach))
    throw new InvalidError(
      `program ${p.name}: the target of a ${a.hook} program is fixed when it is built (section "${p.section}"); it cannot attach to ${attachTarget(a)} instead`,
    );
  const feature =
    a.hook === 'uprobe' && SESSION_SECTION.test(p.section)
      ? 'uprobe_session'
      : (a.hook === 'uprobe' || a.hook === 'uretprobe') && MULTI_SECTION.test(p.section)
        ? 'uprobe_multi'
        : FEATURE[a.hook];
  if (feature) {
    const s = kernel.hook(feature);
    if (s.supported === 'no') return { ok: false, why: s.detail };
  }
  const target = attachTarget(a);
  if (target === undefined) return { ok: true };
  switch (a.hook) {
    case 'kprobe':
    case 'kretprobe':
    case 'fentry':
    case 'fexit':
    case 'fmod_ret': {
      const fn = target.replace(/\+.*$/, '');
      if (!kernel.hasFunction(fn)) return { ok: false, missingTarget: true, why: `this kernel has no function ${fn}` };
      return { ok: true };
    }
    case 'lsm':
      if (!kernel.hasFunction(`bpf_lsm_${target}`))
        return { ok: false, missingTarget: true, why: `this kernel has no LSM hook ${target}` };
      return { ok: true };
    case 'tracepoint':
    case 'raw_tracepoint':
    case 'tp_btf':
      if (!kernel.hasTracepoint(target))
        return { ok: false, missingTarget: true, why: `this kernel has no tracepoint ${target}` };
      return { ok: true };
    default:
      return { ok: true };
  }
}

/** A refusal; when other programs could run without `without`, the hint says how. */
function unsupported(message: string, without: ProgramSpec[] = [], others = 0): KbpfError {
  const names = without.map((p) => p.name);
  return new KbpfError(Unsupported, message, {
    hint:
      names.length && others > 0
        ? `to run the other programs without ${names.length === 1 ? 'it' : 'them'}: --optional ${names.join(' --optional ')} (or --optional all: skip every program this kernel cannot run)`
        : undefined,
  });
}

/**
 * Decides which programs of `spec` run here. Throws (Unsupported, naming the missing feature)
 * when a program that must run cannot, and (Invalid) when a program needs a run-time target
 * nobody gave.
 */
export function choosePrograms(
  spec: PackageSpec,
  overrides: AttachOverrides = {},
  kernel: KernelView = thisKernel,
): ProgramChoices {
  const programs = new Map<string, ProgramChoice>();
  const warnings: string[] = [];
  for (const name of overrides.optional ?? [])
    if (name !== '*' && !spec.programs.some((p) => p.name === name))
      throw new InvalidError(
        `--optional ${name}: the package has no program "${name}" (programs: ${spec.programs.map((p) => p.name).join(', ')})`,
      );
  const optional = (p: ProgramSpec) =>
    p.optional === true || (overrides.optional ?? []).some((n) => n === '*' || n === p.name);
  const attach = new Map(spec.programs.map((p) => [p.name, resolveAttach(p, overrides)]));
  const verdicts = new Map(spec.programs.map((p) => [p.name, verdict(p, attach.get(p.name)!, kernel)]));
  const refuse = (message: string, without: ProgramSpec[]) =>
    unsupported(message, without, spec.programs.filter((q) => !without.includes(q) && verdicts.get(q.name)!.ok).length);

  // groups of variants: declared, or inferred from the function or event
  const groups = new Map<string, ProgramSpec[]>();
  for (const p of spec.programs) {
    const key = p.group !== undefined ? `group ${p.group}` : variantKey(attach.get(p.name)!);
    if (key === undefined) continue;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  for (const [key, members] of groups) {
    const tierOf = (p: ProgramSpec) => TIER[attach.get(p.name)!.hook] ?? 3;
    const tiers = [...new Set(members.map(tierOf))].sort((a, b) => a - b);
    if (tiers.length < 2) continue; // one kind of hook: not alternatives
    const passed: string[] = [];
    let chosen: number | undefined;
    for (const tier of tiers) {
      const inTier = members.filter((p) => tierOf(p) === tier);
      const failing = inTier.filter((p) => !verdicts.get(p.name)!.ok);
      if (failing.length === 0) {
        chosen = tier;
        break;
      }
      passed.push(...failing.map((p) => `${where(p, attach.get(p.name)!)}: ${verdicts.get(p.name)!.why}`));
    }
    if (chosen === undefined) {
      if (members.every(optional)) {
        for (const p of members) {
          const why = verdicts.get(p.name)!.why;
          programs.set(p.name, { name: p.name, state: 'skipped', attach: attach.get(p.name)!, reason: why });
        }
        warnings.push(`skipped optional ${key} (no variant can run here: ${passed.join('; ')})`);
        continue;
      }
      throw refuse(`no variant of the ${key} can run on this kernel: ${passed.join('; ')}`, members);
    }
    const winners = members.filter((p) => tierOf(p) === chosen);
    const winnerNames = winners.map((p) => where(p, attach.get(p.name)!)).join(', ');
    for (const p of members) {
      const a = attach.get(p.name)!;
      if (tierOf(p) === chosen) {
        const reason = passed.length
          ? `chosen for the ${key}: ${passed.join('; ')}`
          : `chosen for the ${key}: ${a.hook} is preferred over ${members
              .filter((m) => tierOf(m) !== chosen)
              .map((m) => attach.get(m.name)!.hook)
              .join(', ')}`;
        programs.set(p.name, { name: p.name, state: 'run', attach: a, reason });
      } else {
        const v = verdicts.get(p.name)!;
        programs.set(p.name, {
          name: p.name,
          state: 'disabled',
          attach: a,
          reason:
            tierOf(p) < chosen!
              ? `variant not usable here (${v.why}); ${winnerNames} runs instead`
              : `variant of ${winnerNames}, which this kernel runs`,
        });
      }
    }
  }

  // the rest, one by one
  const missing: ProgramSpec[] = [];
  for (const p of spec.programs) {
    if (programs.has(p.name)) continue;
    const a = attach.get(p.name)!;
    const v = verdicts.get(p.name)!;
    if (v.ok) {
      programs.set(p.name, { name: p.name, state: 'run', attach: a });
      continue;
    }
    if (optional(p)) {
      programs.set(p.name, { name: p.name, state: 'skipped', attach: a, reason: v.why });
      warnings.push(`skipped optional program ${where(p, a)}: ${v.why}`);
      continue;
    }
    if (!v.missingTarget)
      throw refuse(`program ${p.name} (section "${p.section}") cannot run on this kernel: ${v.why}`, [p]);
    missing.push(p);
  }
  const running = [...programs.values()].filter((c) => c.state === 'run').length;
  if (missing.length && running === 0) {
    const list = missing.map((p) => `${where(p, attach.get(p.name)!)}: ${verdicts.get(p.name)!.why}`);
    throw unsupported(`no program of ${spec.name} can run on this kernel: ${list.join('; ')}`);
  }
  for (const p of missing) {
    const a = attach.get(p.name)!;
    const why = verdicts.get(p.name)!.why;
    programs.set(p.name, { name: p.name, state: 'skipped', attach: a, reason: why });
    warnings.push(`skipped program ${where(p, a)}: ${why}`);
  }
  if (spec.programs.length > 0 && running === 0)
    throw unsupported(`no program of ${spec.name} can run on this kernel: ${warnings.join('; ')}`);
  return { programs, warnings };
}

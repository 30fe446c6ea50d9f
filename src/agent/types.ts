import type { AttachOverrides, GuestCapabilities, GuestLimits } from '../package/package-spec.js';

export type DesiredState = 'running' | 'stopped';
export type Phase = 'pending' | 'running' | 'stopped' | 'failed';

/** One revision of an instance: which package, with which config and attach overrides. */
export interface Revision {
  revision: number;
  /** the reference the user gave (name:tag or name@digest) */
  image: string;
  /** package (OCI manifest) digest */
  digest: string;
  config: Record<string, unknown>;
  attach: AttachOverrides;
  createdAt: string;
  /** why this revision exists: run, upgrade, rollback */
  cause: 'run' | 'upgrade' | 'rollback';
  /** objects loaded from their other build (the verifier refused the default one), by object file */
  objects?: ObjectChoices;
}

/** An object of a package that runs from its other build: the instruction set, and why. */
export interface ObjectChoice {
  cpu: string;
  /** what the verifier said of the default object */
  reason: string;
}

/** The objects of a revision that run from their other build, by object file name. */
export type ObjectChoices = Record<string, ObjectChoice>;

/** Desired state of one instance, as kept in the agent's state directory. */
export interface InstanceRecord {
  name: string;
  desired: DesiredState;
  /** revision number that should run */
  current: number;
  /** history, oldest first (bounded) */
  revisions: Revision[];
  createdAt: string;
  /** an upgrade/rollback that started but did not commit (survives a crash) */
  transition?: { from: number; to: number; startedAt: string };
}

export interface ProgramStatus {
  name: string;
  type: string;
  attach: string;
  /** running; disabled (a variant this kernel runs better is chosen); skipped (this kernel cannot run it) */
  state?: 'running' | 'disabled' | 'skipped';
  /** why it was chosen over its variants, or why it does not run */
  reason?: string;
  progId?: number;
  linkId?: number;
  runCount?: string;
  runTimeNs?: string;
}

/** One program on a shared hook, as inspect shows it: an instance's, or anyone's by its kernel name. */
export interface HookProgram {
  progId: number;
  instance?: string;
  program?: string;
  name?: string;
}

export interface InstanceStatus {
  name: string;
  image: string;
  digest: string;
  package: { name: string; version: string };
  revision: number;
  desired: DesiredState;
  phase: Phase;
  message?: string;
  createdAt: string;
  programs: ProgramStatus[];
  maps: { name: string; type: string; mapId?: number }[];
  config: Record<string, unknown>;
  events: {
    received: number;
    lost: number;
    /** the event processor's counts: records it saw, dropped, emitted; why it was stopped */
    processor?: { in: number; dropped: number; emitted: number; failed?: string };
  };
  /** the size of its event log: files of at most maxBytes, keep rotated ones (kbpf.yaml logs:, run --log-size) */
  logs?: { maxBytes: number; keep: number };
  /** a Wasm guest's module, arguments, limits and capability manifest */
  guest?: { module: string; args: string[]; capabilities: GuestCapabilities; limits?: GuestLimits };
  /** what the instance runs without (skipped programs) or with instead (a perf event's fallback) */
  warnings?: string[];
  /** objects that run from their other build (the verifier refused the default one) */
  objects?: ({ object: string } & ObjectChoice)[];
  /** inspect: every program on each cgroup / tcx hook of this instance, in the order they run */
  hooks?: { attach: string; programs: HookProgram[] }[];
}

export interface RunRequest {
  image: string;
  name?: string;
  /** config variables as given on the command line (strings) or typed values */
  config?: Record<string, unknown>;
  attach?: AttachOverrides;
}

export interface UpgradeRequest {
  image: string;
  config?: Record<string, unknown>;
  attach?: AttachOverrides;
}

/** What `rmi` removed: the tags, the instances (with --force), and the blobs nothing names any more. */
export interface PackageRemoval {
  removed: string[];
  instancesRemoved: string[];
  blobsRemoved: number;
  freedBytes: number;
}

/** One map of an instance with its entries, or one data section of its global variables (kbpf maps). */
export interface MapDump {
  name: string;
  type: string;
  entries: [unknown, unknown][];
  /** the data section of global variables this is (.bss, .data, .rodata): its variables are in `variables` */
  section?: string;
  /** the object the section is of (only for a package of several objects) */
  object?: string;
  variables?: VariableDump[];
  /** its histograms (`slots` arrays) are linear — slot i counts the value i — not log2 */
  linear?: boolean;
}

/** One global variable: its name, its C type as BTF spells it, its value now. */
export interface VariableDump {
  name: string;
  type: string;
  value: unknown;
}

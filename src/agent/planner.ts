// What the agent asks of one kind of instance. Today every instance is a set of BPF programs
// in the kernel (program-planner.ts); the kinds that come next (Wasm guests, a user-space
// engine) are new planners, chosen by what their package declares, not new branches in the
// agent. A planner only adds steps to plans (plan.ts); the agent adds the steps of its own
// records around them and runs the plan.
import type { Codec } from 'kbpf/bpf';
import type { AttachOverrides, AttachSpec, PackageSpec, ProgramOrder } from '../package/package-spec.js';
import type { ProcessorCounts } from '../wasm/processor.js';
import type { EventSink } from './event-pump.js';
import type { IterEntry } from './iter-output.js';
import type { FetchedPackage } from './package-cache.js';
import type { Plan } from './plan.js';
import type { ProgramChoices } from './program-choice.js';
import type { KernelIds } from './realizer.js';
import type { ObjectChoices } from './types.js';

/** A program of another running instance, as the agent's view knows it. */
export interface PeerProgram {
  instance: string;
  program: string;
  progId: number;
  linkId: number;
  attach: AttachSpec;
  order?: ProgramOrder;
}

/** One revision to make real. */
export interface RevisionTarget {
  rev: number;
  pkg: FetchedPackage;
  config: Record<string, unknown>;
  attach: AttachOverrides;
  /** maps this revision uses from other instances: map name → the owner's pin (resolved by the agent) */
  sharedMaps?: Map<string, { owner: string; path: string }>;
  /** the programs other instances run, for programs that declare an order on a shared hook */
  peers?: PeerProgram[];
  /** the objects to load from their other build first (what the revision recorded) */
  objects?: ObjectChoices;
}

/** The revision that runs now, as an upgrade switches away from it. */
export interface RunningRevision {
  rev: number;
  spec: PackageSpec;
  attach: AttachOverrides;
}

/** What executing a planner's steps derived, carried to the later steps and the agent's view. */
export interface Realization {
  ids: KernelIds;
  /** event record codecs, from the objects the steps opened (no second open) */
  codecs?: Map<string, Codec | null>;
  /** which programs run here, and why (variants, skipped programs) */
  choices?: ProgramChoices;
  /** the objects loaded from their other build, and why (set by the load step) */
  objects?: ObjectChoices;
  /** what attaching said (a perf event that fell back to the software clock) */
  warnings: string[];
  /** what the package's iterators wrote when the revision was attached, as log entries */
  iterOutput: { program: string; entries: IterEntry[] }[];
}

export interface InstancePlanner {
  readonly kind: string;
  handles(spec: PackageSpec): boolean;
  /** Steps that check `target` (config, objects) before the kernel sees anything. */
  check(plan: Plan, target: RevisionTarget): void;
  /** Steps that make a fresh instance's first revision real. */
  run(plan: Plan, instance: string, target: RevisionTarget): Realization;
  /** Steps that make the current revision of a stopped (or half-realised) instance real again. */
  start(plan: Plan, instance: string, target: RevisionTarget): Realization;
  /** Steps that make `target` real next to `from` and switch over to it (maps carried, links moved). */
  upgrade(plan: Plan, instance: string, target: RevisionTarget, from: RunningRevision): Realization;
  /** Steps that drop an old revision once the switch is committed. */
  retire(plan: Plan, instance: string, rev: number): void;
  /** Steps that stop a revision (programs detached; state such as maps kept). */
  stop(plan: Plan, instance: string, rev: number): void;
  /** Removes everything of an instance, now (remove, orphans). */
  teardown(instance: string, log: (msg: string) => void): void;
  /** Instances this planner finds realised (pinned) on the node. */
  realised(): string[];
  /**
   * What an agent that (re)starts finds of an instance: an upgrade to `transition.to` that did not
   * commit is undone, revisions other than `rev` are dropped, and what `rev` holds is read.
   */
  adopt(
    instance: string,
    rev: number,
    spec: PackageSpec | undefined,
    transition?: { from: number; to: number },
    attach?: AttachOverrides,
  ): Adopted;
  /** Where map `map` of revision `rev` is pinned (undefined: it is not). */
  mapPin(instance: string, rev: number, map: string): string | undefined;
  /** The pinned data sections of revision `rev`'s global variables (.bss, .data, .rodata), by pin name. */
  globalsPins?(instance: string, rev: number): { name: string; path: string }[];
  /** Starts moving the revision's events into `sink` (undefined: the package has none). */
  openEvents(instance: string, rev: number, pkg: FetchedPackage, sink: EventSink): EventSource | undefined;
  /** Stops what the planner runs in the agent's own process tree (Wasm guests) as the agent closes. */
  close?(): Promise<void>;
}

export interface Adopted {
  /** everything of the revision is in the kernel (nothing to attach) */
  complete: boolean;
  ids: KernelIds;
  choices?: ProgramChoices;
}

/** A running flow of an instance's events into its log. */
export interface EventSource {
  readonly received: number;
  readonly lost: number;
  /** what the package's event processor saw, dropped and emitted (when it has one) */
  readonly processed?: ProcessorCounts;
  /** set when what produces the events ended on its own (a Wasm guest exited, trapped, ran out of budget) */
  readonly ended?: { phase: 'stopped' | 'failed'; message: string };
  close(): Promise<void>;
}

// What the agent knows of each instance without asking the kernel: its record (desired state
// and history, as saved), its phase, the spec of the revision that runs, and the kernel ids that
// revision holds, as the last change (or the adoption at start) found them. Queries read this
// view; only the verbs that change an instance update it.
import type { PackageSpec } from '../package/package-spec.js';
import type { EventSource } from './planner.js';
import type { ProgramChoices } from './program-choice.js';
import { type KernelIds, noKernelIds } from './realizer.js';
import type { InstanceRecord, Phase, Revision } from './types.js';

export class InstanceView {
  phase: Phase = 'pending';
  message?: string;
  events?: EventSource;
  /** events counted by event sources that were closed (upgrade, stop) */
  received = 0;
  lost = 0;
  /** spec of the current revision's package (undefined: the package could not be read) */
  spec?: PackageSpec;
  ids: KernelIds = noKernelIds();
  /** which programs run and why (variants chosen, programs skipped) */
  choices?: ProgramChoices;
  /** what the instance runs without or with instead, for its status */
  warnings: string[] = [];

  constructor(public record: InstanceRecord) {}

  get name(): string {
    return this.record.name;
  }

  get revision(): Revision | undefined {
    return this.record.revisions.find((r) => r.revision === this.record.current);
  }

  get eventsReceived(): number {
    return this.received + (this.events?.received ?? 0);
  }

  get eventsLost(): number {
    return this.lost + (this.events?.lost ?? 0);
  }

  /** Closes the event source, keeping its counts. */
  async closeEvents(): Promise<void> {
    const source = this.events;
    if (!source) return;
    this.events = undefined;
    await source.close();
    this.received += source.received;
    this.lost += source.lost;
  }
}

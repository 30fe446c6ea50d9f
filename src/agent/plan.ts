// A change to an instance, planned before anything happens: a list of steps, each with the undo
// of what it does, run by one executor that unwinds the steps already done when one fails.
// Planners (see program-planner.ts) say which steps a verb takes for one kind of instance; the
// agent adds the steps of its own records around them and hands the plan to execute().
import { wrap } from '../errors.js';

export interface Step {
  /** what the step does, in a few words ("pin programs of revision 2") */
  readonly does: string;
  run(): void | Promise<void>;
  /** takes back what run() did; called only after run() returned, in reverse order of the steps */
  undo?(): void | Promise<void>;
}

export class Plan {
  readonly steps: Step[] = [];
  /** steps after the commit: run once every step succeeded, never undone (dropping what was replaced) */
  readonly afterCommit: Step[] = [];
  readonly #always: (() => void)[] = [];

  /** `subject` names the change in errors: "run opensnoop:1.0.0", "upgrade snoop to …". */
  constructor(readonly subject: string) {}

  step(does: string, run: Step['run'], undo?: Step['undo']): this {
    this.steps.push({ does, run, undo });
    return this;
  }

  /** A step for after the commit (the last of `steps`): nothing is undone when it fails. */
  onCommit(does: string, run: Step['run']): this {
    this.afterCommit.push({ does, run });
    return this;
  }

  /** Something to release when the plan is over, whether it succeeded or not (open objects). */
  always(release: () => void): this {
    this.#always.push(release);
    return this;
  }

  /** @internal the executor's */
  release(log: (msg: string) => void): void {
    for (const r of this.#always.splice(0).reverse()) {
      try {
        r();
      } catch (e) {
        log(`${this.subject}: while releasing: ${(e as Error).message}`);
      }
    }
  }
}

/**
 * Runs the plan's steps in order. When one fails, the steps already done are undone (newest
 * first; a failing undo is logged and the unwinding goes on), and the error is thrown with the
 * plan's subject in front and its kind and cause kept. Once every step succeeded the change is
 * committed: the steps after the commit run in order, and one that fails stops them (its error
 * thrown the same way) but undoes nothing.
 */
export async function execute(plan: Plan, log: (msg: string) => void = () => {}): Promise<void> {
  const done: Step[] = [];
  try {
    for (const step of plan.steps) {
      await step.run();
      done.push(step);
    }
  } catch (e) {
    for (const step of done.reverse()) {
      if (!step.undo) continue;
      try {
        await step.undo();
      } catch (undoErr) {
        log(`${plan.subject}: could not undo "${step.does}": ${(undoErr as Error).message}`);
      }
    }
    plan.release(log);
    throw wrap(e, plan.subject);
  }
  plan.release(log);
  try {
    for (const step of plan.afterCommit) await step.run();
  } catch (e) {
    throw wrap(e, `${plan.subject} (committed)`);
  }
}

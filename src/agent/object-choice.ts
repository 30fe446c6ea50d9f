// Which build of each object a revision loads. `kbpf build` compiles every object a second
// time for another instruction set (spec.alternatives, clang -mcpu=v3): some sources verify
// only as the one build or the other. The load step loads what the revision recorded (the
// default build, unless an earlier load chose the other); when the verifier refuses an object,
// every object is closed, that one is opened from its other build, and all are loaded again.
// When both builds of an object are refused, the error is the default build's, saying that the
// other was refused as well. What failed leaves nothing in the kernel: nothing is pinned before
// every object has loaded, and closing an object releases what it created.
import { type BpfObject, VerifierError } from 'kbpf/bpf';
import type { FetchedPackage } from './package-cache.js';
import type { ObjectChoices } from './types.js';

/** The objects to open from their other build first: those the revision recorded that the package has. */
export function recordedAlternatives(pkg: FetchedPackage, recorded: ObjectChoices | undefined): Set<string> {
  return new Set(Object.keys(recorded ?? {}).filter((f) => pkg.alternatives?.has(f)));
}

/** The line of a verifier log that says why it refused the program (the last before its statistics). */
export function verifierReason(e: VerifierError): string {
  const lines = e.log
    .map((l) => l.trim())
    .filter((l) => l && !/^(processed \d+ insns|-- END PROG LOAD LOG --)/.test(l));
  return `program ${e.programName}: ${lines.at(-1) ?? e.message.split('\n')[0]}`;
}

/**
 * Loads `objects` (opened with `alternative` from their other build), switching an object
 * between its builds when the one loaded is refused: `reopen` closes the objects and opens them
 * again with the set given. Returns the objects that loaded, and which run from their other
 * build, and why.
 */
export function loadObjects(
  pkg: FetchedPackage,
  objects: Map<string, BpfObject>,
  alternative: Set<string>,
  recorded: ObjectChoices | undefined,
  reopen: (alternative: ReadonlySet<string>) => Map<string, BpfObject>,
): { objects: Map<string, BpfObject>; choices: ObjectChoices } {
  const refused = { default: new Map<string, VerifierError>(), other: new Map<string, Error>() };
  for (;;) {
    const failed = loadEach(objects);
    if (!failed) break;
    const { file, error } = failed;
    const alt = pkg.alternatives?.get(file);
    const usedOther = alternative.has(file);
    if (!alt || (!usedOther && !(error instanceof VerifierError))) throw error;
    if (usedOther) refused.other.set(file, error);
    else refused.default.set(file, error as VerifierError);
    const byDefault = refused.default.get(file);
    const byOther = refused.other.get(file);
    if (byDefault && byOther) {
      const why = byOther instanceof VerifierError ? verifierReason(byOther) : byOther.message.split('\n')[0];
      byDefault.message += `\n  its build for cpu ${alt.cpu} (${alt.file}) was refused as well: ${why}`;
      throw byDefault;
    }
    if (usedOther) alternative.delete(file);
    else alternative.add(file);
    objects = reopen(alternative);
  }
  const choices: ObjectChoices = {};
  for (const file of alternative) {
    const byDefault = refused.default.get(file);
    choices[file] = {
      cpu: pkg.alternatives!.get(file)!.cpu,
      reason: byDefault ? verifierReason(byDefault) : (recorded?.[file]?.reason ?? ''),
    };
  }
  return { objects, choices };
}

function loadEach(objects: Map<string, BpfObject>): { file: string; error: Error } | undefined {
  for (const [file, o] of objects) {
    try {
      o.load();
    } catch (e) {
      return { file, error: e as Error };
    }
  }
  return undefined;
}

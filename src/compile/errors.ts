import { type ErrorKind, Invalid, KbpfError } from '../errors.js';

/** A refused build: says which file and what is wrong (clang's diagnostics, one per line). */
export class BuildError extends KbpfError {
  override name = 'BuildError';
  constructor(
    message: string,
    readonly diagnostics: string[] = [],
    kind: ErrorKind = Invalid,
  ) {
    super(kind, diagnostics.length ? `${message}\n${diagnostics.map((d) => `  ${d}`).join('\n')}` : message);
  }
}

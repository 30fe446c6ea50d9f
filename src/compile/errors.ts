/** A refused build: says which file and what is wrong. */
export class BuildError extends Error {
  override name = 'BuildError';
  constructor(
    message: string,
    readonly diagnostics: string[] = [],
  ) {
    super(diagnostics.length ? `${message}\n${diagnostics.map((d) => `  ${d}`).join('\n')}` : message);
  }
}

// Errors of the user-space engines: a program the engine refuses to load (Invalid, or
// Unsupported when it needs something the engine lacks) and a fault while it runs.
import { Invalid, KbpfError, type KbpfErrorOptions, Unsupported } from '../errors.js';

/** A program stopped by a bad access, a bad call or a runaway loop; `pc` is the instruction index. */
export class VmFault extends KbpfError {
  override name = 'VmFault';
  constructor(
    message: string,
    readonly pc?: number,
    opts?: KbpfErrorOptions,
  ) {
    super(Invalid, pc === undefined ? message : `insn ${pc}: ${message}`, opts);
  }
  /** The same fault, placed at an instruction. */
  at(pc: number): VmFault {
    return this.pc === undefined ? new VmFault(this.message, pc, { cause: this.cause }) : this;
  }
}

/** A program the engine will not load: malformed (Invalid) or needing what it lacks (Unsupported). */
export class VmLoadError extends KbpfError {
  override name = 'VmLoadError';
  constructor(message: string, opts: KbpfErrorOptions & { unsupported?: boolean } = {}) {
    super(opts.unsupported ? Unsupported : Invalid, message, opts);
  }
}

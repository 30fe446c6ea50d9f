// Errors of the BTF and ELF readers. Their input comes from packages (outside bytes), so a
// malformed or hostile blob is Corrupted; a well-formed type the codecs cannot handle (a function
// as a value, a value too big to decode) is Unsupported.
import { Corrupted, type ErrorKind, KbpfError, type KbpfErrorOptions } from '../../errors.js';

/** Malformed BTF, or a type the codecs refuse. The message starts with "BTF:" or "BTF codec:". */
export class BtfError extends KbpfError {
  override name = 'BtfError';
  constructor(message: string, kind: ErrorKind = Corrupted, opts?: KbpfErrorOptions) {
    super(kind, message, opts);
  }
}

/** A malformed ELF object file. The message starts with "ELF:". */
export class ElfError extends KbpfError {
  override name = 'ElfError';
  constructor(message: string, opts?: KbpfErrorOptions) {
    super(Corrupted, message, opts);
  }
}

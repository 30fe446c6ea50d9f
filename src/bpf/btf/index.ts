// BTF: parsing (btf.ts), the type model (types.ts), value codecs (codec.ts) and the ELF
// reader that extracts `.BTF` and symbols from BPF object files (elf.ts).
export { Btf } from './btf.js';
export {
  type BtfCodec,
  type Codec,
  type CodecOptions,
  codecFor,
  codecLayout,
  EncodeError,
  MAX_CODEC_SIZE,
  MAX_CODEC_VALUES,
  MAX_STRUCT_FIELDS,
} from './codec.js';
export {
  type ElfSection,
  type ElfSegment,
  type ElfSymbol,
  type ElfSymbolBind,
  type ElfSymbolType,
  readElfSectionHeaders,
  readElfSections,
  readElfSegments,
  readElfSymbols,
  readObjectBtf,
} from './elf.js';
export { BtfError, ElfError } from './errors.js';
export {
  type JsonEncoder,
  type JsonEncoderOptions,
  jsonEncoderFor,
  MAX_JSON_ENCODER_BYTES,
  writeUint,
} from './json-encoder.js';
export type { LayoutField, LayoutRead, ValueLayout } from './layout.js';
export * from './types.js';

// BTF: parsing (btf.ts), the type model (types.ts), value codecs (codec.ts) and the ELF
// reader that extracts `.BTF` and symbols from BPF object files (elf.ts).
export { Btf } from './btf.js';
export { codecFor, EncodeError, type BtfCodec, type Codec, type CodecOptions } from './codec.js';
export {
  readElfSectionHeaders, readElfSections, readElfSymbols, readObjectBtf,
  type ElfSection, type ElfSymbol, type ElfSymbolBind, type ElfSymbolType,
} from './elf.js';
export * from './types.js';

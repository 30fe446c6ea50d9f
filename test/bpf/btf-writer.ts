// A tiny writer of raw BTF blobs for synthetic and hostile test inputs (not a test file itself).
import { BTF_KIND, type BtfKind } from '../../src/bpf/btf/index.js';

export class BtfWriter {
  private readonly words: number[] = [];
  private readonly strBytes: number[] = [0];
  private readonly strOffsets = new Map<string, number>([['', 0]]);
  private next: number;

  constructor(private readonly opts: { startId?: number; strBase?: number; le?: boolean } = {}) {
    this.next = opts.startId ?? 1;
    if (opts.strBase) this.strBytes.length = 0; // split BTF: offsets continue after the base's strings
  }

  str(s: string): number {
    if (s === '' && !this.opts.strBase) return 0;
    let off = this.strOffsets.get(s);
    if (off === undefined || (s === '' && this.opts.strBase)) {
      off = (this.opts.strBase ?? 0) + this.strBytes.length;
      this.strBytes.push(...Buffer.from(s), 0);
      this.strOffsets.set(s, off);
    }
    return off;
  }

  add(kind: BtfKind, name: string, vlen: number, kindFlag: boolean, sizeOrType: number, ...extra: number[]): number {
    const info = ((kindFlag ? 1 : 0) << 31) | (BTF_KIND[kind] << 24) | vlen;
    this.words.push(name ? this.str(name) : 0, info >>> 0, sizeOrType >>> 0, ...extra.map((x) => x >>> 0));
    return this.next++;
  }

  build(): Uint8Array {
    const le = this.opts.le ?? true;
    const typeLen = this.words.length * 4;
    const out = new Uint8Array(24 + typeLen + this.strBytes.length);
    const dv = new DataView(out.buffer);
    dv.setUint16(0, 0xeb9f, le);
    out[2] = 1;
    dv.setUint32(4, 24, le);
    dv.setUint32(8, 0, le);
    dv.setUint32(12, typeLen, le);
    dv.setUint32(16, typeLen, le);
    dv.setUint32(20, this.strBytes.length, le);
    this.words.forEach((w, i) => {
      dv.setUint32(24 + i * 4, w, le);
    });
    out.set(this.strBytes, 24 + typeLen);
    return out;
  }
}

export const intEnc = (
  bits: number,
  opts: { signed?: boolean; char?: boolean; bool?: boolean; offset?: number } = {},
): number =>
  (((opts.signed ? 1 : 0) | (opts.char ? 2 : 0) | (opts.bool ? 4 : 0)) << 24) | ((opts.offset ?? 0) << 16) | bits;

// struct bpf_link_create_opts (libbpf 1.1 layout): { size_t sz; __u32 flags; union {...} }.
// We only ever set flags; the union stays zero (which every kernel accepts).
const SIZE = 48;

export function linkCreateOpts(flags: number): Uint8Array {
  const b = Buffer.alloc(SIZE);
  b.writeBigUInt64LE(BigInt(SIZE), 0);
  b.writeUInt32LE(flags >>> 0, 8);
  return b;
}

// The shape of a value as a codec reads it (codec.ts builds one per type it compiles): where
// each field lies and how its bytes become a JS value. Other readers of the same bytes — the
// JSON encoder (json-encoder.ts) — follow it, so that they agree with the codec field for field
// (anonymous members flattened, duplicate names skipped, char arrays as strings) without
// interpreting the BTF a second time.

/** Reads the value at `off` exactly as the codec does (for the kinds a reader need not know). */
export type LayoutRead = (dv: DataView, bytes: Uint8Array, off: number) => unknown;

export type ValueLayout =
  /** A 1, 2, 4 or 8-byte integer (also pointers): number up to 32 bits, bigint at 64. */
  | { readonly kind: 'int'; readonly size: 1 | 2 | 4 | 8; readonly signed: boolean; readonly le: boolean }
  /** A one-byte bool. */
  | { readonly kind: 'bool'; readonly size: 1 }
  /** A 1, 2 or 4-byte enum: the enumerator's name, or the number when it has none. */
  | {
      readonly kind: 'enum';
      readonly size: 1 | 2 | 4;
      readonly signed: boolean;
      readonly le: boolean;
      readonly names: ReadonlyMap<number | bigint, string>;
    }
  /** A char array: the bytes up to the first NUL, as UTF-8. */
  | { readonly kind: 'chars'; readonly size: number }
  /** Opaque bytes (unions, odd sizes): a Uint8Array copy. */
  | { readonly kind: 'bytes'; readonly size: number }
  | { readonly kind: 'array'; readonly size: number; readonly n: number; readonly elem: ValueLayout }
  /** Fields in declaration order (the order of the decoded object's keys as created). */
  | { readonly kind: 'struct'; readonly size: number; readonly fields: readonly LayoutField[] }
  /**
   * Anything else (128-bit ints, wider bools, 64-bit enums, floats, bitfields): `read` gives the
   * decoded value; `maxJson` bounds the length of its JSON text in bytes. A bitfield has size 0
   * (it shares its bytes with its neighbours).
   */
  | { readonly kind: 'other'; readonly size: number; readonly read: LayoutRead; readonly maxJson: number };

export interface LayoutField {
  readonly key: string;
  /** Byte offset in the struct. */
  readonly off: number;
  readonly layout: ValueLayout;
}

/** Longest JSON text of a 64-bit integer as jsonValue writes it: `"-9223372036854775808"`. */
export const MAX_JSON_INT64 = 22;

/** Longest JSON text of any of `names` (as strings), or of a number that has no name. */
export function maxJsonOfNames(names: Iterable<string>, numberMax = MAX_JSON_INT64): number {
  let max = numberMax;
  for (const n of names) max = Math.max(max, Buffer.byteLength(JSON.stringify(n)));
  return max;
}

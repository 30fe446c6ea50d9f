// The one binary search of the symbol tables: sorted start addresses, the last at or below.

/** The index of the last element of sorted `a` that is ≤ `x`, or -1 when every one is above it. */
export function floorIndex<T extends number | bigint>(
  a: { readonly length: number; readonly [i: number]: T },
  x: T,
): number {
  let lo = 0;
  let hi = a.length - 1;
  if (hi < 0 || x < a[0]!) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (a[mid]! <= x) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

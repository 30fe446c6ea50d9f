// log2 histograms as the BPF tools print them: a map value with a `slots` array of counts, slot i
// counting values from 2^(i-1) to 2^i - 1 (slot 0: 0 and 1), drawn as rows of stars.

/** The slots of a map value that is a log2 histogram (a struct with a `slots` array of counts). */
export function histogramSlots(value: unknown): number[] | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const slots = (value as { slots?: unknown }).slots;
  if (!Array.isArray(slots) || slots.length === 0) return undefined;
  const out: number[] = [];
  for (const s of slots) {
    const n = typeof s === 'number' ? s : typeof s === 'string' && /^\d+$/.test(s) ? Number(s) : Number.NaN;
    if (!Number.isFinite(n)) return undefined;
    out.push(n);
  }
  return out;
}

const WIDTH = 40;

/** "     value               : count    distribution" and one row per slot up to the last used one. */
export function renderLog2Histogram(slots: readonly number[], unit = 'value'): string {
  let last = -1;
  slots.forEach((n, i) => {
    if (n > 0) last = i;
  });
  if (last < 0) return '(no values)\n';
  const max = Math.max(...slots);
  const wide = last > 32;
  const num = wide ? 20 : 10;
  const rows = [`${' '.repeat(wide ? 15 : 5)}${unit.padEnd(wide ? 29 : 19)} : count    distribution`];
  for (let i = 0; i <= last; i++) {
    const hi = 2n ** BigInt(i + 1) - 1n;
    const lo = i === 0 ? 0n : 2n ** BigInt(i);
    const stars = Math.round((slots[i]! * WIDTH) / max);
    rows.push(
      `${String(lo).padStart(num)} -> ${String(hi).padEnd(num)} : ${String(slots[i]).padEnd(8)} |${'*'.repeat(stars).padEnd(WIDTH)}|`,
    );
  }
  return `${rows.join('\n')}\n`;
}

/**
 * A linear histogram (slot i counts the value i, as runqlen's run queue lengths): "     value
 * : count    distribution" and one row per slot from the first used one to the last.
 */
export function renderLinearHistogram(slots: readonly number[], unit = 'value'): string {
  const used = slots.flatMap((n, i) => (n > 0 ? [i] : []));
  if (used.length === 0) return '(no values)\n';
  const max = Math.max(...slots);
  const rows = [`     ${unit.padEnd(13)} : count    distribution`];
  for (let i = used[0]!; i <= used[used.length - 1]!; i++) {
    const stars = Math.round((slots[i]! * WIDTH) / max);
    rows.push(`${String(i).padStart(10)}    : ${String(slots[i]).padEnd(8)} |${'*'.repeat(stars).padEnd(WIDTH)}|`);
  }
  return `${rows.join('\n')}\n`;
}

/** A histogram drawn as the package counts it: linear or log2. */
export function renderHistogram(slots: readonly number[], linear = false): string {
  return linear ? renderLinearHistogram(slots) : renderLog2Histogram(slots);
}

// What an iterator wrote, as log entries: text (BPF_SEQ_PRINTF) line by line; binary records
// (bpf_seq_write of a struct, as libbpf-bootstrap's task_iter does) decoded with the record
// struct `kbpf build` found for the program; other bytes as a hex dump, never as escaped text.
import { type Btf, codecFor } from 'kbpf/bpf';

/** One log entry of an iterator's output. */
export type IterEntry = { output: string } | Record<string, unknown>;

const decoder = new TextDecoder('utf-8', { fatal: true });

/** The bytes as text when they are UTF-8 without control characters other than tab and newlines. */
export function asText(bytes: Uint8Array): string | undefined {
  let text: string;
  try {
    text = decoder.decode(bytes);
  } catch {
    return undefined;
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what makes it binary
  return /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(text) ? undefined : text;
}

/** `OFFSET  xx xx … |ascii|` lines of 16 bytes. */
export function hexDump(bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (let at = 0; at < bytes.length; at += 16) {
    const row = bytes.subarray(at, at + 16);
    const hex = [...row].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...row].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    out.push(`${at.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  |${ascii}|`);
  }
  return out;
}

/** The entries for `bytes`: lines of text, records of `record` (a struct in `btf`), or a hex dump. */
export function iterEntries(bytes: Uint8Array, record?: string, btf?: Btf): IterEntry[] {
  const text = asText(bytes);
  if (text !== undefined) {
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines.map((output) => ({ output }));
  }
  const found = record ? btf?.findStruct(record) : undefined;
  if (found && btf && found.type.size > 0 && bytes.length % found.type.size === 0) {
    const codec = codecFor(btf, found.id);
    const out: IterEntry[] = [];
    for (let at = 0; at < bytes.length; at += codec.size) out.push(codec.decode(bytes, at) as Record<string, unknown>);
    return out;
  }
  return hexDump(bytes).map((output) => ({ output }));
}

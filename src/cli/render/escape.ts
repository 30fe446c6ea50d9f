// Text printed for humans must not carry terminal control sequences: a file name, a process name
// or an instance name can hold ESC [ … and rewrite the screen, or bidi overrides that reorder
// what is shown. Such characters are printed as escapes (\x1b, \u202e); JSON and YAML output
// keep values as they are (their own quoting escapes them).

// C0 controls, DEL, C1 controls, line/paragraph separators, bidi embeddings/overrides/isolates
// and the left-to-right / right-to-left marks
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: same set, all but the newline
const CONTROL_BUT_NEWLINE_RE = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

const NAMED: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

function escapeChar(c: string): string {
  const named = NAMED[c];
  if (named) return named;
  const code = c.charCodeAt(0);
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/** One line of text for a terminal: every control character escaped (newlines too). */
export function escapeControl(s: string): string {
  return s.replace(CONTROL_RE, escapeChar);
}

/** Several lines of text for a terminal: control characters escaped, newlines kept. */
export function escapeLines(s: string): string {
  return s.replace(CONTROL_BUT_NEWLINE_RE, escapeChar);
}

// What a package's own C text says before it is compiled: the struct tags it defines (so their
// types can be kept in the object's BTF for decoding events), whether it calls bpf_printk, and
// the words that name kfuncs. Generated headers (vmlinux.h) are not the package's own text.

/** The text without C comments (string literals kept). */
export function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*|("(?:[^"\\\n]|\\.)*")/g, (m, str: string | undefined) =>
    str !== undefined ? str : m.startsWith('/*') ? ' ' : '',
  );
}

/** Tags of the structs the text defines (`struct NAME {`), in order, each once. */
export function definedStructs(text: string): string[] {
  const out: string[] = [];
  for (const m of stripComments(text).matchAll(/\bstruct\s+([A-Za-z_]\w*)\s*\{/g))
    if (!out.includes(m[1]!)) out.push(m[1]!);
  return out;
}

/**
 * Names of the structs the text defines through a typedef (`typedef struct [TAG] { ... } NAME;`),
 * in order, each once: real tools name their record types so, often without a tag.
 */
export function typedefStructs(text: string): string[] {
  const t = stripComments(text);
  const out: string[] = [];
  for (const m of t.matchAll(/\btypedef\s+struct\s*(?:[A-Za-z_]\w*\s*)?\{/g)) {
    let depth = 1;
    let at = m.index + m[0].length;
    for (; at < t.length && depth > 0; at++) {
      if (t[at] === '{') depth++;
      else if (t[at] === '}') depth--;
    }
    const name = /^\s*(?:__attribute__\s*\(\([^;]*?\)\)\s*)?([A-Za-z_]\w*)\s*;/.exec(t.slice(at))?.[1];
    if (name && !out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * The package's own files a source includes (`#include "NAME"`), transitively, searched in
 * `dirs` in order: the text whose typedefs the source can name.
 */
export function includedText(sourceText: string, read: (name: string) => string | undefined): string {
  const seen = new Set<string>();
  const texts = [sourceText];
  for (let i = 0; i < texts.length; i++)
    for (const m of stripComments(texts[i]!).matchAll(/^\s*#\s*include\s*"([^"]+)"/gm)) {
      const name = m[1]!;
      if (seen.has(name)) continue;
      seen.add(name);
      const text = read(name);
      if (text !== undefined) texts.push(text);
    }
  return texts.join('\n');
}

/** True when the text calls bpf_printk (the macro, not the bpf_trace_printk helper). */
export function callsPrintk(text: string): boolean {
  return /\bbpf_printk\s*\(/.test(stripComments(text));
}

/** A header the package did not write: vmlinux.h and its per-architecture variants. */
export function isGeneratedHeader(file: string): boolean {
  return /^vmlinux[\w.-]*\.h$/.test(file);
}

/**
 * The translation unit kbpf compiles for `source`: the source itself, then a pointer variable
 * per struct the package defines, in a section libbpf ignores. Clang writes a type to BTF only
 * where a global, a map or a function's signature uses it, and the record struct of a real
 * tool's events is often used only through a local pointer; these keep it in the object's BTF
 * for the agent to decode the events with.
 */
export function keepTypesUnit(source: string, structs: readonly string[], typedefs: readonly string[] = []): string {
  return [
    `#include ${JSON.stringify(source)}`,
    ...structs.map((s) => `struct ${s} *__kbpf_type_${s} __attribute__((section(".kbpf.types"), used));`),
    ...typedefs
      .filter((t) => !structs.includes(t))
      .map((t) => `${t} *__kbpf_type_${t} __attribute__((section(".kbpf.types"), used));`),
    '',
  ].join('\n');
}

// The bpf_conformance plugin protocol (bin/kbpf-conformance-plugin): the program as base16 text
// on one line of stdin (or `--program HEX`), the input memory as base16 text in the first
// argument, r0 printed in hex on stdout and exit 0; a program it refuses or that faults exits 1
// with the reason on stderr. `--engine interpreter|wasm` picks the engine (default interpreter).
import { errorMessage } from '../errors.js';
import { ENGINES, type EngineName } from './engine.js';
import { decodeProgram } from './insn.js';
import { Vm } from './vm.js';

/** Bytes of base16 text: tokens split by whitespace, each one byte or a run of hex pairs. */
export function base16Decode(text: string): Uint8Array {
  const out: number[] = [];
  for (const tok of text.trim().split(/\s+/)) {
    if (!tok) continue;
    const t = tok.startsWith('0x') ? tok.slice(2) : tok;
    if (!/^[0-9a-fA-F]+$/.test(t)) continue;
    if (t.length <= 2) out.push(Number.parseInt(t, 16));
    else for (let i = 0; i + 1 < t.length; i += 2) out.push(Number.parseInt(t.slice(i, i + 2), 16));
  }
  return Uint8Array.from(out);
}

/** The suite's own encoding: each byte as two hex digits followed by spaces. */
export function base16Encode(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `${b.toString(16).padStart(2, '0')}  `).join('');
}

export interface PluginResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface PluginInput {
  program: Uint8Array;
  memory?: Uint8Array;
  engine?: EngineName;
}

/** Runs one program as the plugin does; never throws. */
export function runConformance(input: PluginInput): PluginResult {
  try {
    const vm = new Vm({ engine: input.engine ?? 'interpreter', allowCallx: true });
    vm.load('main', decodeProgram(input.program));
    let args: bigint[] = [];
    if (input.memory && input.memory.length > 0) {
      const r = vm.give(input.memory, 'given', 'memory');
      args = [BigInt(r.start), BigInt(input.memory.length)];
    }
    const r0 = vm.run('main', args);
    return { code: 0, stdout: `${r0.toString(16)}\n`, stderr: '' };
  } catch (e) {
    return { code: 1, stdout: '', stderr: `${errorMessage(e)}\n` };
  }
}

export function parsePluginArgs(argv: readonly string[]): { program?: string; memory?: string; engine: EngineName } {
  const args = [...argv];
  let engine: EngineName = 'interpreter';
  let program: string | undefined;
  let memory: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--engine' || a.startsWith('--engine=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[++i];
      if (!ENGINES.includes(v as EngineName)) throw new Error(`--engine: one of ${ENGINES.join(', ')}`);
      engine = v as EngineName;
    } else if (a === '--program') program = args[++i];
    else if (a === '--debug') continue;
    else if (a === '--elf') throw new Error('--elf is not supported; give raw instructions');
    else if (a.startsWith('--')) throw new Error(`Unexpected arguments: ${a}`);
    else if (memory === undefined) memory = a;
    else throw new Error(`Unexpected arguments: ${a}`);
  }
  return { program, memory, engine };
}

// The process one Wasm guest runs in (started by guest-process.ts). It reads its start request
// from stdin, runs the guest's _start with WASI preview 1 (node:wasi) and the wasm_bpf host
// (host.ts), and reports to fd 3, one JSON line each, synchronously (a guest that never returns
// to the event loop still gets its reports out). The guest's own stdout and stderr are fds 1
// and 2: the agent turns their lines into the instance's log.
import { readFileSync, writeSync } from 'node:fs';
import { WASI } from 'node:wasi';
import { errorMessage } from '../errors.js';
import { CALLBACK_WRAPPER_MODULE, WASI_MODULE, WASM_BPF_MODULE } from './abi.js';
import { type HostEvent, WasmBpfHost } from './host.js';
import { limitMemory, PAGE_BYTES } from './memory-limit.js';
import { dieWithParent } from './parent-death.js';
import type { GuestEvent, GuestStart } from './protocol.js';

const REPORT_FD = 3;

function report(e: GuestEvent | HostEvent): void {
  try {
    writeSync(REPORT_FD, `${JSON.stringify(e)}\n`);
  } catch {
    // the agent is gone: the kernel kills this process (parent-death signal)
  }
}

function main(): number {
  // everything is loaded: a spare process (GuestSpares) waits here for its guest
  report({ t: 'waiting' });
  const text = readFileSync(0, 'utf8');
  if (text === '') return 0; // a spare that was never used: the agent went
  const start = JSON.parse(text) as GuestStart;
  dieWithParent(start.parentPid);
  const wasm = Buffer.from(start.module, 'base64');
  let module: WebAssembly.Module;
  try {
    const limited = limitMemory(wasm, Math.floor((start.memoryMb * 2 ** 20) / PAGE_BYTES));
    module = new WebAssembly.Module(limited.module as Uint8Array<ArrayBuffer>);
  } catch (e) {
    report({ t: 'fatal', message: `the guest module cannot be used: ${errorMessage(e)}` });
    return 78;
  }
  const host = new WasmBpfHost({ capabilities: start.capabilities, pinDir: start.pinDir, report });
  const provided = host.imports();
  const wasi = new WASI({ version: 'preview1', args: [start.name, ...start.args], env: {}, returnOnExit: true });
  const imports: WebAssembly.Imports = { [WASI_MODULE]: lineBuffered(wasi.wasiImport, () => instance) };
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.module === WASI_MODULE) continue;
    const fns =
      imp.module === WASM_BPF_MODULE || imp.module === CALLBACK_WRAPPER_MODULE ? provided[imp.module] : undefined;
    if (imp.kind !== 'function' || !fns || !Object.hasOwn(fns, imp.name)) {
      report({
        t: 'fatal',
        message: `the guest imports ${imp.module}.${imp.name} (a ${imp.kind}), which this host does not provide (it provides wasm_bpf, callback-wrapper and WASI preview 1)`,
      });
      return 78;
    }
    imports[imp.module] = provided[imp.module] as WebAssembly.ModuleImports;
  }
  let instance: WebAssembly.Instance;
  try {
    instance = new WebAssembly.Instance(module, imports);
  } catch (e) {
    report({ t: 'fatal', message: `the guest cannot be instantiated: ${errorMessage(e)}` });
    return 78;
  }
  host.bind(instance);
  report({ t: 'started' });
  try {
    const code = wasi.start(instance);
    report({ t: 'exit', code });
    return code;
  } catch (e) {
    report({ t: 'trap', message: errorMessage(e) });
    return 70;
  } finally {
    host.closeAll();
  }
}

/**
 * Makes stdout and stderr look like a terminal to the guest (a character device that cannot
 * seek), as they are under wasm-bpf's own runtime: the guest's C library then flushes each line,
 * and each line reaches the instance's log when it is printed, not when a buffer fills.
 */
function lineBuffered(
  wasiImport: Record<string, unknown>,
  instance: () => WebAssembly.Instance,
): WebAssembly.ModuleImports {
  const fdstat = wasiImport.fd_fdstat_get as (fd: number, ptr: number) => number;
  return {
    ...(wasiImport as WebAssembly.ModuleImports),
    fd_fdstat_get: (fd: number, ptr: number): number => {
      const ret = fdstat(fd, ptr);
      if (ret === 0 && (fd === 1 || fd === 2)) {
        const mem = instance().exports.memory as WebAssembly.Memory;
        const view = new DataView(mem.buffer);
        view.setUint8(ptr, 2); // __WASI_FILETYPE_CHARACTER_DEVICE
        const rights = view.getBigUint64(ptr + 8, true);
        view.setBigUint64(ptr + 8, rights & ~((1n << 2n) | (1n << 5n)), true); // no FD_SEEK, FD_TELL
      }
      return ret;
    },
  };
}

process.exitCode = main();

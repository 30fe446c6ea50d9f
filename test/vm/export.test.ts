// kbpf vm export: the module runs in a fresh Node process whose host is written here from the
// documented ABI alone (docs/vm.md, "Exported modules"; no kbpf code), with the same verdicts,
// packets and map as the Wasm engine inside kbpf.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import { loadVmObject, runPacket, Vm, type VmValueMap } from '../../src/vm/index.js';
import { objectPath, tempDir } from '../../testbed/kernel.js';

/** A Wasm host for an exported XDP program: argv = module, packets as hex; prints the results as JSON. */
const HOST = String.raw`
import { readFileSync } from 'node:fs';
const [file, ...packets] = process.argv.slice(2);
const module = new WebAssembly.Module(readFileSync(file));
const abi = JSON.parse(new TextDecoder().decode(WebAssembly.Module.customSections(module, 'kbpf.abi')[0]));
const memory = new WebAssembly.Memory({ initial: abi.minPages });
const dv = () => new DataView(memory.buffer);
const u8 = () => new Uint8Array(memory.buffer);
const regions = [];
function writeTable() {
  const t = abi.regionTable;
  dv().setUint32(t.at, regions.length, true);
  regions.forEach((r, i) => {
    const at = t.at + 8 + i * t.entrySize;
    dv().setUint32(at, r.start, true);
    dv().setUint32(at + 4, r.end, true);
    dv().setUint32(at + 8, r.writable ? 1 : 0, true);
  });
}
regions.push({ start: abi.stack.start, end: abi.stack.end, writable: true });
for (const m of abi.maps)
  if (m.values !== undefined) {
    regions.push({ start: m.values, end: m.values + m.stride * m.maxEntries, writable: !m.readOnly });
    if (m.initial) u8().set(Buffer.from(m.initial, 'hex'), m.values);
  }
const fixed = regions.length;
const mapOf = (handle) => abi.maps.find((m) => m.handle === handle);
function lookup(handle, key) {
  const m = mapOf(handle);
  if (!m || m.type !== 'array') throw new Error('lookup in map ' + handle);
  const i = dv().getUint32(key, true);
  return i < m.maxEntries ? m.values + i * m.stride : 0;
}
const env = {
  memory,
  fault: (pc, addr, size, write) => { throw new Error('fault at insn ' + pc + ': ' + (write ? 'write' : 'read') + ' of ' + size + ' at ' + addr); },
  stop: (pc, why) => { throw new Error('stopped at insn ' + pc + ' (' + why + ')'); },
  map_lookup_elem_i32: (handle, key) => lookup(handle >>> 0, key >>> 0),
};
for (const h of abi.helpers) {
  if (h.id !== 1) throw new Error('this host has no ' + h.name);
  env[h.import] = (map, key) => BigInt(lookup(Number(map), Number(key)));
}
const ex = new WebAssembly.Instance(module, { env }).exports;
const results = [];
for (const hex of packets) {
  const data = Buffer.from(hex, 'hex');
  const ctx = abi.heapBase;
  const pkt = ctx + 64 + 256;
  u8().set(data, pkt);
  regions.length = fixed;
  regions.push({ start: ctx, end: ctx + 24, writable: false }, { start: pkt, end: pkt + data.length, writable: true });
  writeTable();
  u8().fill(0, abi.cache.at, abi.cache.at + abi.cache.size);
  dv().setUint32(ctx, pkt, true);
  dv().setUint32(ctx + 4, pkt + data.length, true);
  dv().setUint32(ctx + 8, pkt, true);
  dv().setUint32(ctx + 12, 1, true);
  ex.budget.value = 1000000n;
  ex.depth.value = 0;
  const r0 = ex.run(BigInt(ctx), 0n, 0n, 0n, 0n, BigInt(abi.stack.end));
  const start = dv().getUint32(ctx, true);
  const end = dv().getUint32(ctx + 4, true);
  results.push({ r0: Number(BigInt.asUintN(32, r0)), packet: Buffer.from(u8().slice(start, end)).toString('hex') });
}
const verdicts = abi.maps.find((m) => m.name === 'verdicts');
const counts = Array.from({ length: verdicts.maxEntries }, (_, i) => dv().getBigUint64(verdicts.values + i * verdicts.stride, true).toString());
console.log(JSON.stringify({ results, verdicts: counts }));
`;

function packet(proto: number, dport: number): Buffer {
  const b = Buffer.alloc(14 + 20 + 8 + 4);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b[23] = proto;
  b.set([10, 0, 0, 1, 10, 0, 0, 2], 26);
  b.writeUInt16BE(40000, 34);
  b.writeUInt16BE(dport, 36);
  return b;
}

test('an exported module runs in a fresh process on a host written from the ABI, with the same results', async (t) => {
  const dir = tempDir(t, 'kbpf-export-');
  const obj = objectPath(import.meta.url, '../bpf/testrun.bpf.o');
  const out = join(dir, 'xdp_udp.wasm');
  let said = '';
  const note = (s: string) => {
    said += s;
  };
  const io = { stdout: note, stderr: note, env: {} };
  assert.equal(await runCli(['vm', 'export', obj, 'xdp_udp', '-o', out], io), 0, said);
  writeFileSync(join(dir, 'host.mjs'), HOST);
  const packets = [packet(17, 53), packet(17, 7), packet(6, 80), packet(17, 5353), packet(17, 7).subarray(0, 20)];
  const got = JSON.parse(
    execFileSync(process.execPath, [join(dir, 'host.mjs'), out, ...packets.map((p) => p.toString('hex'))], {
      encoding: 'utf8',
    }),
  );
  const vm = new Vm({ engine: 'wasm' });
  loadVmObject(vm, readFileSync(obj));
  const want = packets.map((p) => {
    const r = runPacket(vm, 'xdp_udp', 'xdp', { data: p });
    return { r0: r.retval, packet: Buffer.from(r.data).toString('hex') };
  });
  assert.deepEqual(got.results, want);
  const verdicts = vm.map('verdicts') as VmValueMap;
  assert.deepEqual(
    got.verdicts,
    [0, 1, 2, 3, 4].map((k) =>
      Buffer.from(verdicts.get(Uint8Array.of(k, 0, 0, 0))!)
        .readBigUInt64LE()
        .toString(),
    ),
  );
  assert.deepEqual(
    got.results.map((r: { r0: number }) => r.r0),
    [1, 3, 2, 2, 2], // drop (53), tx (echo), pass: TCP, another port, a truncated IPv4 header
  );
});

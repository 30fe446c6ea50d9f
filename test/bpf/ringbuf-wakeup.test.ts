// Wake-ups of the ring buffer reader under stress: many short producer bursts (BPF_PROG_TEST_RUN
// from two threadpool threads at once, so reservations and commits of two CPUs interleave), with
// pauses in between, into small rings that fill up. After every burst, every committed record
// must reach the consumer within a bounded time: a consumer left waiting (a missed wake-up, or a
// reader that takes a non-empty ring for empty) fails the test at once, with the ring's state.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BpfObject } from '../../src/bpf/object.js';
import { poller } from '../../src/bpf/poller.js';
import { RingBufferReader } from '../../src/bpf/ringbuf/index.js';
import { closer, testPacket, testRunAsync } from './ringbuf-util.js';

const OBJ = fileURLToPath(new URL('./ringbuf_wakeup.bpf.o', import.meta.url));
const PACKET = testPacket('kbpf-wakeup\0');
const BURSTS = Number(process.env.KBPF_WAKEUP_BURSTS ?? 50); // 150+ for a soak run
/** Bound on the time from the end of a burst to its last record reaching the consumer. */
const DEADLINE_MS = 1000;

type Consumer = 'readable+consumeRaw' | 'batches' | 'iterator';

interface Case {
  consumer: Consumer;
  ring: 'rb_page' | 'rb_four';
  perRun: number;
  discardEvery: number;
  highWaterMark: number;
}

const CASES: Case[] = [
  { consumer: 'readable+consumeRaw', ring: 'rb_page', perRun: 1, discardEvery: 0, highWaterMark: 1024 },
  { consumer: 'readable+consumeRaw', ring: 'rb_four', perRun: 4, discardEvery: 5, highWaterMark: 1024 },
  { consumer: 'batches', ring: 'rb_page', perRun: 1, discardEvery: 0, highWaterMark: 7 },
  { consumer: 'batches', ring: 'rb_four', perRun: 4, discardEvery: 5, highWaterMark: 64 },
  { consumer: 'iterator', ring: 'rb_page', perRun: 2, discardEvery: 3, highWaterMark: 16 },
  // As the benchmark: bursts that overrun the ring (lost records), a large highWaterMark.
  { consumer: 'readable+consumeRaw', ring: 'rb_four', perRun: 64, discardEvery: 0, highWaterMark: 4096 },
  { consumer: 'batches', ring: 'rb_four', perRun: 64, discardEvery: 0, highWaterMark: 4096 },
];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A small deterministic PRNG: the same bursts every run. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0;
  return (n) => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s % n;
  };
}

for (const c of CASES) {
  test(`every record of each burst arrives: ${c.consumer}, ${c.ring}, ${c.perRun}/run, discard 1/${c.discardEvery || '∞'}, hwm ${c.highWaterMark}`, async (t) => {
    const use = closer(t);
    const obj = BpfObject.open(OBJ);
    try {
      obj.setGlobals({ per_run: c.perRun, discard_every: c.discardEvery, which: c.ring === 'rb_four' ? 1 : 0 });
      obj.load();
    } catch (e) {
      obj.close();
      throw e;
    }
    use(obj);
    const reader = use(new RingBufferReader(obj.map(c.ring), { decode: 'raw', highWaterMark: c.highWaterMark }));
    const prog = obj.program('produce');
    const bss = () => obj.map('.bss').lookup(0) as { seq: bigint; submitted: bigint; lost: bigint };

    let got = 0;
    let duplicates = 0;
    const seqs = new Set<number>();
    const seen = (seq: number): void => {
      // (seq is taken after the reservation, so two CPUs' records need not be in seq order.)
      if (seqs.has(seq)) duplicates++;
      seqs.add(seq);
      got++;
    };
    let done = false;
    const consumer = (async () => {
      const r = reader as RingBufferReader<Buffer>;
      if (c.consumer === 'readable+consumeRaw') {
        const visit = (dv: DataView, off: number): void =>
          seen(dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 2 ** 32);
        while (!done) {
          await r.readable();
          if (r.closed) break;
          r.consumeRaw(visit, 5); // a few at a time: partial reads leave records in the ring
        }
      } else if (c.consumer === 'batches') {
        for await (const batch of r.batches()) for (const b of batch) seen(Number(b.readBigUInt64LE(0)));
      } else {
        for await (const b of r) seen(Number(b.readBigUInt64LE(0)));
      }
    })();

    const rand = rng(0x5eed + c.perRun * 31 + c.highWaterMark);
    try {
      for (let burst = 0; burst < BURSTS; burst++) {
        const a = 1 + rand(c.ring === 'rb_page' ? 40 : 120);
        const b = rand(3) === 0 ? 0 : 1 + rand(40);
        await Promise.all([testRunAsync(prog, PACKET, a), b ? testRunAsync(prog, PACKET, b) : null]);
        const want = Number(bss().submitted);
        const deadline = Date.now() + DEADLINE_MS;
        while (got < want && Date.now() < deadline) await sleep(1);
        if (got !== want) {
          const s = reader.stats;
          assert.fail(
            `burst ${burst}: the consumer has ${got} of ${want} records ${DEADLINE_MS} ms after the producer stopped ` +
              `(pending ${s.pendingBytes} bytes, buffered ${s.buffered}, discarded ${s.discarded}, ` +
              `poller waiting ${poller().waiting}, polling ${poller().polling})`,
          );
        }
        // Pauses of 0–3 ms: the consumer goes back to sleep between most bursts.
        const pause = rand(4);
        if (pause) await sleep(pause);
      }
    } finally {
      done = true;
      reader.close(); // ends the consumer's wait
      await consumer;
    }
    assert.equal(duplicates, 0, 'records read twice');
    const { seq, submitted, lost } = bss();
    t.diagnostic(`${BURSTS} bursts: ${seq} reserved, ${submitted} submitted, ${lost} lost, ${got} read`);
    assert.equal(got, Number(submitted));
  });
}

// A producer that never wakes its reader (BPF_RB_NO_WAKEUP, as flow-monitor's reports mostly are):
// a reader with pollMs finds its records by looking every pollMs; one without it waits in vain.
for (const pollMs of [20, undefined]) {
  test(`records submitted without a wake-up: ${pollMs ? `found with pollMs ${pollMs}` : 'not seen without pollMs'}`, async (t) => {
    const use = closer(t);
    const obj = BpfObject.open(OBJ);
    try {
      obj.setGlobals({ per_run: 3, no_wakeup: 1, which: 1 });
      obj.load();
    } catch (e) {
      obj.close();
      throw e;
    }
    use(obj);
    const reader = use(new RingBufferReader(obj.map('rb_four'), { decode: 'raw', pollMs }));
    let got = 0;
    let done = false;
    const consumer = (async () => {
      while (!done) {
        await reader.readable();
        if (reader.closed) break;
        got += reader.consumeRaw(() => {});
      }
    })();
    try {
      for (let round = 0; round < 5; round++) {
        const before = got;
        await sleep(30); // the reader is waiting (its fd armed) before the records come
        await testRunAsync(obj.program('produce'), PACKET, 10);
        const start = Date.now();
        while (got < before + 30 && Date.now() - start < 300) await sleep(2);
        if (pollMs) {
          assert.equal(
            got,
            before + 30,
            `round ${round}: records read ${Date.now() - start} ms after they were written`,
          );
        } else {
          assert.equal(got, 0, 'a reader without pollMs was woken by records submitted with BPF_RB_NO_WAKEUP');
          assert.equal(reader.pendingBytes, 30 * (round + 1) * 24, 'the records wait in the ring');
        }
      }
    } finally {
      done = true;
      reader.close();
      await consumer;
    }
  });
}

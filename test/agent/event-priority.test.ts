// The agent's threads while rings carry events (src/agent/event-priority.ts): SCHED_IDLE
// while a ring has records and room, SCHED_OTHER again when one backs up and once drained
// below the resume mark, and when the events go quiet; --events-priority normal never switches.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BOOST_FILL,
  EventPriority,
  QUIET_MS,
  RESUME_FILL,
  threadPolicy,
  threads,
} from '../../src/agent/event-priority.js';

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
const ring = {};
/** every thread of this process (V8's helpers, libuv's pool): their policies */
const policies = (): number[] => threads().map((tid) => threadPolicy(tid));

test("the agent's threads read events at SCHED_IDLE while rings have room, normal when one backs up or they go quiet", async (t) => {
  const p = new EventPriority('idle');
  t.after(() => p.normal());
  assert.equal(p.mode, 'idle', 'root may switch back, so the mode stays idle');
  assert.equal(threadPolicy(), SCHED_OTHER);
  p.afterBatch(ring, 0, 0);
  assert.equal(threadPolicy(), SCHED_OTHER, 'an empty batch does not switch');
  p.afterBatch(ring, 100, 0.01);
  assert.equal(threadPolicy(), SCHED_IDLE);
  assert.ok(threads().length > 1, 'node runs helper threads');
  assert.deepEqual(new Set(policies()), new Set([SCHED_IDLE]), 'every thread of the process is idle');
  p.afterBatch(ring, 1024, BOOST_FILL);
  assert.equal(threadPolicy(), SCHED_OTHER, 'a ring a quarter full: normal share');
  assert.deepEqual(new Set(policies()), new Set([SCHED_OTHER]), 'every thread back at the normal share');
  p.afterBatch(ring, 1024, (BOOST_FILL + RESUME_FILL) / 2);
  assert.equal(threadPolicy(), SCHED_OTHER, 'stays normal until drained below the resume mark');
  p.afterBatch(ring, 10, RESUME_FILL / 2);
  assert.equal(threadPolicy(), SCHED_IDLE);
  await sleep(QUIET_MS * 1.6);
  assert.equal(threadPolicy(), SCHED_OTHER, 'quiet for a second: normal again');
  assert.deepEqual(new Set(policies()), new Set([SCHED_OTHER]));
  assert.equal(p.idle, false);
});

test('--events-priority normal never switches', () => {
  const p = new EventPriority('normal');
  p.afterBatch(ring, 100, 0.01);
  assert.equal(threadPolicy(), SCHED_OTHER);
  assert.equal(p.switches, 0);
});

test('an API request holds the normal share while it is answered', (t) => {
  const p = new EventPriority('idle');
  t.after(() => p.normal());
  p.afterBatch(ring, 100, 0.01);
  assert.equal(threadPolicy(), SCHED_IDLE);
  const release = p.hold();
  assert.equal(threadPolicy(), SCHED_OTHER, 'a request switches to the normal share at once');
  const second = p.hold();
  p.afterBatch(ring, 100, 0.01);
  assert.equal(threadPolicy(), SCHED_OTHER, 'a batch read meanwhile does not switch back to idle');
  release();
  release(); // twice: counts once
  p.afterBatch(ring, 100, 0.01);
  assert.equal(threadPolicy(), SCHED_OTHER, 'the other request still holds it');
  second();
  p.afterBatch(ring, 100, 0.01);
  assert.equal(threadPolicy(), SCHED_IDLE, 'answered: the next batch is read at idle again');
});

// The plan executor: steps run in order; a failure undoes the steps done (newest first), even
// when an undo fails; releases always run; steps after the commit are never undone; the error
// keeps its kind and cause under the plan's subject.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execute, Plan } from '../../src/agent/plan.js';
import { Invalid, InvalidError, isKind } from '../../src/errors.js';

test('a plan runs its steps in order, releases, then runs what comes after the commit', async () => {
  const log: string[] = [];
  const plan = new Plan('test')
    .step(
      'a',
      () => void log.push('a'),
      () => void log.push('undo a'),
    )
    .step('b', async () => void log.push('b'))
    .always(() => void log.push('release'))
    .onCommit('c', () => void log.push('c'));
  await execute(plan);
  assert.deepEqual(log, ['a', 'b', 'release', 'c']);
});

test('a failing step undoes the steps done, newest first, and keeps the kind and cause', async () => {
  const log: string[] = [];
  const cause = new InvalidError('bad value');
  const messages: string[] = [];
  const plan = new Plan('run x:1')
    .step(
      'a',
      () => void log.push('a'),
      () => void log.push('undo a'),
    )
    .step(
      'b',
      () => void log.push('b'),
      () => {
        throw new Error('cannot undo b');
      },
    )
    .step(
      'c',
      () => void log.push('c'),
      () => void log.push('undo c'),
    )
    .step(
      'd',
      () => {
        throw cause;
      },
      () => void log.push('undo d'),
    )
    .always(() => void log.push('release'))
    .onCommit('after', () => void log.push('after'));
  await assert.rejects(
    execute(plan, (m) => messages.push(m)),
    (e: Error) => {
      assert.equal(e.message, 'run x:1: bad value');
      assert.ok(isKind(e, Invalid));
      assert.equal(e.cause, cause);
      return true;
    },
  );
  assert.deepEqual(log, ['a', 'b', 'c', 'undo c', 'undo a', 'release']);
  assert.deepEqual(messages, ['run x:1: could not undo "b": cannot undo b']);
});

test('a failure after the commit undoes nothing', async () => {
  const log: string[] = [];
  const plan = new Plan('upgrade')
    .step(
      'a',
      () => void log.push('a'),
      () => void log.push('undo a'),
    )
    .onCommit('drop old', () => {
      throw new Error('busy');
    })
    .onCommit('never', () => void log.push('never'));
  await assert.rejects(execute(plan), /^Error: upgrade \(committed\): busy$|upgrade \(committed\): busy/);
  assert.deepEqual(log, ['a']);
});

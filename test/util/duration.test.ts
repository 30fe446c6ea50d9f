// The one parser of durations and `since` times (CLI, agent API, node log endpoint).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Invalid, isKind } from '../../src/errors.js';
import { parseDuration, parseSince } from '../../src/util/duration.js';

const NOW = Date.parse('2024-05-01T10:00:00Z');
const ago = (s: string): number => NOW - parseSince(s, NOW).getTime();

test('durations: every unit, combined, fractional', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('2d'), 172_800_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('2h45m10s'), 9_910_000);
  assert.equal(parseDuration('1m500ms'), 60_500);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(parseDuration('0s'), 0);
});

test('not durations: a bare number, unknown units, spaces, signs, garbage', () => {
  for (const s of ['', '10', 'abc', '5x', '1h 30m', '-5m', '+5m', 'h', '5mm', '1e3s', '.5s', '5m ', 'm5'])
    assert.equal(parseDuration(s), undefined, JSON.stringify(s));
});

test("since: the agent API's forms (durations with d, RFC 3339, Unix seconds)", () => {
  assert.equal(parseSince('5m', NOW).toISOString(), '2024-05-01T09:55:00.000Z');
  assert.equal(ago('2d'), 172_800_000);
  assert.equal(parseSince('2024-05-01T09:00:00Z', NOW).toISOString(), '2024-05-01T09:00:00.000Z');
  assert.equal(parseSince('1714557600', NOW).toISOString(), '2024-05-01T10:00:00.000Z');
  assert.equal(parseSince('1714557600.5', NOW).toISOString(), '2024-05-01T10:00:00.500Z');
});

test("since: the CLI's forms (durations, times with an offset)", () => {
  assert.equal(parseSince('90s', NOW).toISOString(), '2024-05-01T09:58:30.000Z');
  assert.equal(parseSince('2024-05-01T08:00:00+02:00', NOW).toISOString(), '2024-05-01T06:00:00.000Z');
  assert.equal(parseSince('2024-05-01T08:00:00.250-01:30', NOW).toISOString(), '2024-05-01T09:30:00.250Z');
  assert.equal(parseSince('2024-05-01t08:00:00z', NOW).toISOString(), '2024-05-01T08:00:00.000Z');
  assert.equal(parseSince('2024-05-01 08:00:00Z', NOW).toISOString(), '2024-05-01T08:00:00.000Z');
  assert.equal(parseSince('2024-05-01', NOW).toISOString(), '2024-05-01T00:00:00.000Z');
});

test("since: the node log endpoint's forms (500ms, 30s, 5m, 2h, RFC 3339), and 1h30m it used to refuse", () => {
  assert.equal(ago('500ms'), 500);
  assert.equal(ago('30s'), 30_000);
  assert.equal(ago('2h'), 7_200_000);
  assert.equal(ago('1h30m'), 5_400_000);
  assert.equal(ago('2h45m10s'), 9_910_000);
  assert.equal(parseSince('2024-04-30T23:59:59.999Z', NOW).toISOString(), '2024-04-30T23:59:59.999Z');
});

test('since: garbage is an Invalid error that says what is accepted', () => {
  for (const s of [
    'soon',
    'yesterday-ish',
    'the dawn of time',
    '2024-13-01',
    '2024-05-01T25:00:00Z',
    'May 1 2024',
    '1h 30m',
    '',
  ]) {
    assert.throws(
      () => parseSince(s, NOW),
      (e: Error) => {
        assert.ok(isKind(e, Invalid), `${JSON.stringify(s)}: ${e.message}`);
        assert.equal(
          e.message,
          `since: "${s}" is neither a duration (30s, 5m, 1h30m) nor a time (2024-05-01T10:00:00Z, or Unix seconds)`,
        );
        return true;
      },
    );
  }
});

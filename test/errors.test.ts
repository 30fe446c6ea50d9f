// The error model: kinds survive wrapping (matched through cause chains like Go's errors.Is),
// kernel errnos give their kinds, and the API server alone turns kinds into HTTP statuses.
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { test } from 'node:test';
import { ApiError } from '../src/agent/api-client.js';
import { errorStatus } from '../src/agent/api-server.js';
import { BpfError, UnsupportedError, VerifierError } from '../src/bpf/errors.js';
import {
  Conflict,
  ConflictError,
  Corrupted,
  findError,
  Invalid,
  InvalidError,
  isKind,
  kindOf,
  NotFound,
  NotFoundError,
  Refused,
  Unavailable,
  Unsupported,
  wrap,
} from '../src/errors.js';
import { DigestMismatchError, NotFoundError as PackageNotFound, RegistryError } from '../src/package/errors.js';

test('isKind finds a kind anywhere on the cause chain, and in an AggregateError', () => {
  const inner = new NotFoundError('no instance named "x"');
  const outer = new Error('rm x', { cause: inner });
  assert.ok(isKind(outer, NotFound));
  assert.ok(!isKind(outer, Conflict));
  assert.equal(kindOf(outer), NotFound);
  assert.ok(isKind(new AggregateError([new Error('a'), inner]), NotFound));
  assert.equal(kindOf(new Error('plain')), undefined);
  assert.ok(!isKind(undefined, NotFound));
  // a cycle on the chain ends the walk
  const a = new Error('a') as Error & { cause?: unknown };
  a.cause = a;
  assert.ok(!isKind(a, NotFound));
});

test('wrap adds context in front and keeps kind, cause and details', () => {
  const inner = new InvalidError('config variable target_pid (u32): "x" is not a number', { details: ['d'] });
  const w = wrap(inner, 'run opensnoop:1.0.0');
  assert.equal(w.message, 'run opensnoop:1.0.0: config variable target_pid (u32): "x" is not a number');
  assert.equal(w.kind, Invalid);
  assert.equal(w.cause, inner);
  assert.deepEqual(w.details, ['d']);
  assert.equal(findError(w, InvalidError), inner);
  // wrapping an error without a kind keeps it findable, and gives no kind
  const plain = wrap(new TypeError('boom'), 'upgrade x');
  assert.equal(kindOf(plain), undefined);
  assert.ok(findError(plain, TypeError));
});

test('a kernel errno gives its kind; every kernel errno is also a refusal; a runtime refusal is not', () => {
  const enoent = new BpfError('open pinned map', '/sys/fs/bpf/x', constants.errno.ENOENT);
  assert.ok(isKind(enoent, NotFound) && isKind(enoent, Refused));
  assert.equal(enoent.code, 'ENOENT');
  assert.match(enoent.message, /^open pinned map \/sys\/fs\/bpf\/x: no such file or directory \(ENOENT\)$/);
  assert.ok(isKind(new BpfError('pin', 'x', constants.errno.EEXIST), Conflict));
  assert.ok(isKind(new BpfError('load', 'x', 524), Unsupported));
  const eperm = new BpfError('load program', '"p"', constants.errno.EPERM, { hint: 'run as root' });
  assert.equal(eperm.kind, Refused);
  assert.match(eperm.message, /operation not permitted \(EPERM\); run as root$/);
  const missing = new BpfError('find map', '"m" in object "o"', NotFound, { hint: 'maps: a, b' });
  assert.equal(missing.errno, 0);
  assert.equal(missing.code, 'NotFound');
  assert.ok(isKind(missing, NotFound) && !isKind(missing, Refused));
  assert.equal(missing.message, 'find map "m" in object "o": not found; maps: a, b');
  const unsupported = new UnsupportedError('attach', 'prog to kprobe x', 'no kprobes here', 'kprobes');
  assert.equal(unsupported.feature, 'kprobes');
  assert.ok(isKind(unsupported, Unsupported) && !isKind(unsupported, Refused));
});

test('package errors carry kinds from their codes and from registry statuses', () => {
  assert.ok(isKind(new PackageNotFound('no tag 1.0'), NotFound));
  assert.ok(isKind(new DigestMismatchError('blob changed', 'sha256:a', 'sha256:b'), Corrupted));
  assert.ok(isKind(new RegistryError('push: 503', 503), Unavailable));
  assert.ok(isKind(new RegistryError('pull: 404', 404), NotFound));
});

test('the API server chooses the HTTP status from the kind (and from the errno of a kernel refusal)', () => {
  assert.equal(errorStatus(new NotFoundError('x')), 404);
  assert.equal(errorStatus(wrap(new ConflictError('name taken'), 'run')), 409);
  assert.equal(errorStatus(new InvalidError('bad name')), 400);
  assert.equal(errorStatus(new UnsupportedError('attach', 'p', 'no kprobes')), 501);
  assert.equal(errorStatus(new BpfError('load', 'p', constants.errno.EPERM)), 403);
  assert.equal(errorStatus(wrap(new BpfError('create map', 'm', constants.errno.ENOMEM), 'run x')), 503);
  assert.equal(errorStatus(new BpfError('attach', 'p', constants.errno.EINVAL)), 422);
  assert.equal(errorStatus(new VerifierError('o', 'p', constants.errno.EACCES, ['R0 invalid mem access'])), 422);
  assert.equal(errorStatus(new DigestMismatchError('changed', 'a', 'b')), 422);
  assert.equal(errorStatus(new Error('a bug')), 500);
});

test('a client error has the kind the agent named, or Unavailable when the agent cannot be reached', () => {
  assert.ok(isKind(new ApiError(404, 'no instance', undefined, undefined, NotFound), NotFound));
  assert.ok(isKind(new ApiError(0, 'cannot talk to the kbpf agent'), Unavailable));
});

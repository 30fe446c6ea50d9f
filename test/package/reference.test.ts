import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  formatReference,
  InvalidReferenceError,
  isLoopbackRegistry,
  parseReference,
  referenceName,
} from '../../src/package/index.js';

const D = `sha256:${'ab'.repeat(32)}`;

test('parses names, tags, digests and registry hosts', () => {
  const cases: [string, object][] = [
    ['opensnoop', { repository: 'opensnoop', tag: 'latest' }],
    ['opensnoop:1.0', { repository: 'opensnoop', tag: '1.0' }],
    ['tools/opensnoop:1.0-rc_1', { repository: 'tools/opensnoop', tag: '1.0-rc_1' }],
    ['mesh-accel.v2__x:V1', { repository: 'mesh-accel.v2__x', tag: 'V1' }],
    [`opensnoop@${D}`, { repository: 'opensnoop', digest: D }],
    [`opensnoop:1.0@${D}`, { repository: 'opensnoop', tag: '1.0', digest: D }],
    ['127.0.0.1:5000/opensnoop:1.0', { registry: '127.0.0.1:5000', repository: 'opensnoop', tag: '1.0' }],
    ['localhost/opensnoop', { registry: 'localhost', repository: 'opensnoop', tag: 'latest' }],
    ['localhost:5000/a/b/c:tag', { registry: 'localhost:5000', repository: 'a/b/c', tag: 'tag' }],
    [
      'registry.example.com/team/tcpconnect',
      { registry: 'registry.example.com', repository: 'team/tcpconnect', tag: 'latest' },
    ],
    ['[::1]:5000/x:y', { registry: '[::1]:5000', repository: 'x', tag: 'y' }],
    [`ghcr.io/org/pkg@${D}`, { registry: 'ghcr.io', repository: 'org/pkg', digest: D }],
  ];
  for (const [input, expected] of cases) {
    assert.deepEqual(parseReference(input), expected, input);
  }
});

test('defaultTag option: null leaves the tag unset, a string replaces latest', () => {
  assert.deepEqual(parseReference('opensnoop', { defaultTag: null }), { repository: 'opensnoop' });
  assert.deepEqual(parseReference('opensnoop', { defaultTag: 'dev' }), { repository: 'opensnoop', tag: 'dev' });
});

test('format round-trips and referenceName groups by host/repository', () => {
  for (const s of ['opensnoop:1.0', `opensnoop@${D}`, `127.0.0.1:5000/a/b:c@${D}`, 'registry.example.com/x:latest']) {
    assert.equal(formatReference(parseReference(s)), s);
  }
  assert.equal(formatReference(parseReference('opensnoop')), 'opensnoop:latest');
  assert.equal(referenceName(parseReference('127.0.0.1:5000/opensnoop:1.0')), '127.0.0.1:5000/opensnoop');
  assert.equal(referenceName(parseReference('opensnoop:1.0')), 'opensnoop');
});

test('refuses bad references with a message saying what is wrong', () => {
  const bad: [string, RegExp][] = [
    ['', /empty reference/],
    ['Opensnoop:1.0', /must be lowercase \("Opensnoop"\)/],
    ['opensnoop:', /empty tag/],
    ['opensnoop:-x', /tag "-x" may contain only/],
    [`opensnoop:${'a'.repeat(129)}`, /129 characters long \(at most 128\)/],
    ['opensnoop@sha256:abc', /invalid digest "sha256:abc".*64 lowercase hex/],
    [`opensnoop@md5:${'a'.repeat(32)}`, /algorithm "md5" is not supported/],
    ['opensnoop@', /nothing after "@"/],
    [`@${D}`, /missing name/],
    ['a//b', /empty path component/],
    ['/a', /empty path component/],
    ['http://reg/x:1', /no scheme/],
    ['open snoop', /whitespace/],
    ['host:99999/x', /port 99999 is out of range/],
    ['a/b$/c', /name component "b\$"/],
    ['a--/b', /name component "a--"/],
    ['bad_host_:5000/x', /registry host "bad_host_:5000" is not a valid/],
  ];
  for (const [input, why] of bad) {
    assert.throws(
      () => parseReference(input),
      (err: unknown) => {
        assert.ok(err instanceof InvalidReferenceError, `${input}: ${String(err)}`);
        assert.equal(err.code, 'INVALID_REFERENCE');
        assert.match(err.message, /^invalid reference ".*":/s, input);
        assert.match(err.message, why, input);
        return true;
      },
    );
  }
});

test('loopback registries are detected for plain HTTP', () => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000', '[::1]'])
    assert.ok(isLoopbackRegistry(h), h);
  for (const h of ['registry.example.com', '10.0.0.1:5000', 'localhost.example.com:5000', '127.0.0.1.nip.io'])
    assert.ok(!isLoopbackRegistry(h), h);
});

// A program the verifier rejects: load() throws a VerifierError that names the object and the
// program and carries the verifier's log, and nothing of the object stays in the kernel.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BpfError, BpfObject, VerifierError } from '../../src/bpf/index.js';
import { kernelIds, objectPath } from '../../testbed/kernel.js';
import { leftOfOurs, NOTHING, oursNow, oursOf } from './leak-check.js';

const OBJ = 'verifier.bpf.o';

/** Opens the fixture with only `only` (and `fine`) set to load. */
function openWith(only: string[]): BpfObject {
  const obj = BpfObject.open(objectPath(import.meta.url, OBJ));
  for (const p of obj.programs.values()) if (!only.includes(p.name)) p.setAutoload(false);
  return obj;
}

function loadError(obj: BpfObject): VerifierError {
  let err: unknown;
  try {
    obj.load();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof VerifierError, `expected a VerifierError, got ${String(err)}`);
  return err;
}

test('an unchecked map lookup dereference: VerifierError with object, program and log', async () => {
  const before = kernelIds();
  const obj = openWith(['fine', 'deref_unchecked']);
  try {
    const err = loadError(obj);
    assert.ok(err instanceof BpfError);
    assert.equal(err.name, 'VerifierError');
    assert.equal(err.objectName, 'verifier.bpf');
    assert.equal(err.programName, 'deref_unchecked');
    assert.equal(err.code, 'EACCES');
    assert.match(
      err.message,
      /^load program "deref_unchecked" of object "verifier\.bpf": permission denied \(EACCES\)/,
    );
    // the message quotes the verifier's last lines, which say why it stopped
    assert.match(err.message, /verifier: R0 invalid mem access 'map_value_or_null'/);
    // `log` holds the verifier's lines, from the first instruction to the summary
    assert.ok(err.log.length > 5, `log: ${err.log.join('\n')}`);
    assert.ok(err.log.includes("R0 invalid mem access 'map_value_or_null'"), err.log.join('\n'));
    assert.ok(err.log.some((l) => /call bpf_map_lookup_elem/.test(l)));
    assert.ok(err.log.some((l) => /^processed \d+ insns/.test(l)));
    assert.equal(obj.loaded, false);
    // the maps libbpf created before the rejection are already gone, even before close()
    assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test("an out-of-bounds map value access is rejected with the verifier's reason", async () => {
  const before = kernelIds();
  const obj = openWith(['oob_access']);
  try {
    const err = loadError(obj);
    assert.equal(err.programName, 'oob_access');
    assert.match(err.message, /"oob_access" of object "verifier\.bpf"/);
    assert.ok(
      err.log.some((l) => /invalid access to map value, value_size=8 off=8 size=8/.test(l)),
      err.log.join('\n'),
    );
    assert.deepEqual(VerifierError.excerpt(err.log, 2), err.log.filter((l) => l.trim()).slice(-2));
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

test('the same object without the rejected programs loads (the fixture is otherwise valid)', async () => {
  const before = kernelIds();
  const obj = openWith(['fine']);
  try {
    obj.load();
    assert.equal(obj.program('fine').loaded, true);
    assert.equal(obj.program('deref_unchecked').loaded, false);
    const now = oursNow(before, oursOf(obj));
    assert.equal(now.prog.length, 1, `prog: ${now.prog}`);
    assert.equal(now.map.length, 3, `maps: ${now.map}`); // vf_counts, vf_other, verifier.rodata
  } finally {
    obj.close();
  }
  assert.deepEqual(await leftOfOurs(before, oursOf(obj)), NOTHING);
});

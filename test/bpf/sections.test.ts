// Sections libbpf 1.1 does not know are typed by the runtime and load.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BpfObject } from '../../src/bpf/index.js';
import { attachFromSection } from '../../src/compile/derive.js';
import { objectPath } from '../../testbed/kernel.js';

test('tc/ingress and tcx/egress programs get their type and load; the build derives their hook', () => {
  const obj = BpfObject.open(objectPath(import.meta.url, 'sections.bpf.o'));
  try {
    assert.equal(obj.program('tc_in').type, 'sched_cls');
    assert.equal(obj.program('tcx_out').type, 'sched_cls');
    assert.equal(obj.program('tcx_out').expectedAttachType, 'tcx_egress');
    obj.load();
    assert.ok(obj.program('tc_in').fd > 0);
  } finally {
    obj.close();
  }
  assert.deepEqual(attachFromSection('tc/ingress', []), { hook: 'tc', direction: 'ingress' });
  assert.deepEqual(attachFromSection('tcx/egress', []), { hook: 'tc', direction: 'egress' });
});

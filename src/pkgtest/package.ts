// A package's tests and objects from the local store (after `kbpf build` or `kbpf pull`): the
// bytecode layers, the tests layer (KBPF_TESTS), config defaults and event record types.
import { NotFoundError } from '../errors.js';
import type { LayoutStore } from '../package/layout-store.js';
import { KBPF_TESTS } from '../package/media-types.js';
import { readPackageObjects } from '../package/package-objects.js';
import { readPackageTests } from './cases.js';
import { readPackageObject } from './prepare.js';
import type { TestInput } from './runner.js';

export async function packageTestInput(store: LayoutStore, reference: string): Promise<TestInput> {
  const { package: pkg, objects, defaults, eventTypes } = await readPackageObjects(store, reference);
  const testsLayer = pkg.manifest.layers.find((l) => l.mediaType === KBPF_TESTS);
  if (!testsLayer)
    throw new NotFoundError(`package ${pkg.reference} has no tests`, {
      hint: 'put test cases in tests/*.yaml beside the .bpf.c and build it again (docs/testing.md)',
    });
  const tests = readPackageTests(await store.getBlob(testsLayer.digest, testsLayer.size), pkg.reference);
  return {
    reference: pkg.reference,
    objects: objects.map((o) => readPackageObject(o.file, o.bytes)),
    tests,
    defaults,
    eventTypes,
  };
}

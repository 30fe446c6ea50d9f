// A package's tests and objects from the local store (after `kbpf build` or `kbpf pull`): the
// bytecode layers, the tests layer (KBPF_TESTS) and what the spec says about config defaults
// and event records.
import { NotFoundError } from '../errors.js';
import type { LayoutStore } from '../package/layout-store.js';
import { ANNOTATION_TITLE, KBPF_BYTECODE, KBPF_TESTS } from '../package/media-types.js';
import type { PackageSpec } from '../package/package-spec.js';
import { readPackageTests } from './cases.js';
import { readPackageObject } from './prepare.js';
import type { TestInput } from './runner.js';

export async function packageTestInput(store: LayoutStore, reference: string): Promise<TestInput> {
  const pkg = await store.resolve(reference);
  const testsLayer = pkg.manifest.layers.find((l) => l.mediaType === KBPF_TESTS);
  if (!testsLayer)
    throw new NotFoundError(`package ${pkg.reference} has no tests`, {
      hint: 'put test cases in tests/*.yaml beside the .bpf.c and build it again (docs/testing.md)',
    });
  const tests = readPackageTests(await store.getBlob(testsLayer.digest, testsLayer.size), pkg.reference);
  const objects = [];
  for (const l of pkg.manifest.layers)
    if (l.mediaType === KBPF_BYTECODE) {
      const title = l.annotations?.[ANNOTATION_TITLE] ?? l.digest;
      objects.push(readPackageObject(title, await store.getBlob(l.digest, l.size)));
    }
  const spec = pkg.config as unknown as Partial<PackageSpec>;
  const defaults: Record<string, unknown> = {};
  for (const c of spec.config ?? []) if (c.default !== undefined) defaults[c.name] = c.default;
  const eventTypes = new Map((spec.events ?? []).filter((e) => e.type).map((e) => [e.map, e.type]));
  return { reference: pkg.reference, objects, tests, defaults, eventTypes };
}

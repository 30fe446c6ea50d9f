// The watcher and the store, without an API server: a scripted list/watch source stands in for
// it. resourceVersions are opaque (only handed back to the server, never compared), a 410 Gone
// or a failed watch lists again, and a store applies events in the order they come, except for
// versions older than a write the reconciler observed itself.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ObjectMeta } from '../../src/k8s/api.js';
import { type Change, Store } from '../../src/k8s/runtime/store.js';
import {
  type ListWatch,
  type WatchEvent,
  type WatchEventType,
  Watcher,
  type WatchOutcome,
} from '../../src/k8s/runtime/watcher.js';

interface Obj {
  metadata: ObjectMeta;
  spec?: { node?: string; v?: number };
}

const obj = (name: string, resourceVersion: string, spec: Obj['spec'] = {}): Obj => ({
  metadata: { name, resourceVersion },
  spec,
});

type Step = (on: (t: WatchEventType, o: Obj) => void) => WatchOutcome | Error;

/** A source that answers lists and watches from scripts, and records what it was asked. */
class ScriptedSource implements ListWatch<Obj> {
  readonly watchedFrom: string[] = [];
  listed = 0;
  constructor(
    readonly lists: { items: Obj[]; resourceVersion: string }[],
    readonly watches: Step[],
  ) {}

  async list(): Promise<{ items: Obj[]; resourceVersion: string }> {
    const r = this.lists[Math.min(this.listed, this.lists.length - 1)]!;
    this.listed++;
    return structuredClone(r);
  }

  watch(rv: string, on: (t: WatchEventType, o: Obj) => void, signal: AbortSignal): Promise<WatchOutcome> {
    this.watchedFrom.push(rv);
    const step = this.watches.shift();
    if (!step) return new Promise((r) => signal.addEventListener('abort', () => r('ended'), { once: true }));
    const out = step(on);
    return out instanceof Error ? Promise.reject(out) : Promise.resolve(out);
  }
}

async function until(what: string, cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe('watcher', () => {
  it('lists, watches from the list version, resumes from the newest version (bookmarks too), lists again on 410 Gone', async () => {
    const src = new ScriptedSource(
      [
        { items: [obj('a', 'x-1')], resourceVersion: 'list/1' },
        { items: [obj('b', 'x-9')], resourceVersion: 'list/2' },
      ],
      [
        (on) => {
          on('MODIFIED', obj('a', 'x-2', { v: 2 }));
          on('BOOKMARK', obj('', 'bookmark-7'));
          return 'ended';
        },
        (on) => {
          on('ADDED', obj('c', 'ü'));
          return 'gone';
        },
      ],
    );
    const store = new Store<Obj>();
    const events: WatchEvent<Obj>['type'][] = [];
    const w = new Watcher(
      src,
      (e) => {
        events.push(e.type);
        store.apply(e);
      },
      { what: 'objs' },
    );
    await w.start();
    await until('the relist after 410', () => w.relists === 2);
    w.stop();
    // versions are passed back verbatim, whatever they look like
    assert.deepEqual(src.watchedFrom.slice(0, 3), ['list/1', 'bookmark-7', 'list/2']);
    assert.deepEqual(events, ['restarted', 'applied', 'applied', 'restarted']); // no event for the bookmark
    assert.deepEqual([...store.keys()], ['b']);
  });

  it('a failed watch is logged and followed by a list', async () => {
    const logs: string[] = [];
    const src = new ScriptedSource(
      [{ items: [], resourceVersion: '1' }],
      [() => new Error('connection reset'), () => 'ended'],
    );
    const w = new Watcher<Obj>(src, () => {}, { what: 'objs', log: (m) => logs.push(m), backoff: { minMs: 1 } });
    await w.start();
    await until('a second list', () => src.listed === 2);
    w.stop();
    assert.match(logs[0]!, /watch objs: connection reset; listing again/);
  });
});

describe('store', () => {
  it('applies watch events in the order they come: a resourceVersion is not a number to compare', () => {
    const s = new Store<Obj>();
    s.apply({ type: 'restarted', objects: [obj('a', '10')] });
    // numerically smaller, lexically larger, not a number at all: each is the newest as it comes
    for (const rv of ['9', '100', 'b7', 'A'])
      assert.deepEqual(s.apply({ type: 'applied', object: obj('a', rv) }).length, 1);
    assert.equal(s.get('a')?.metadata.resourceVersion, 'A');
  });

  it('reports changes with both versions; a relist reports what went, came and stayed', () => {
    const s = new Store<Obj>();
    s.apply({ type: 'restarted', objects: [obj('a', '1'), obj('b', '1')] });
    const upd = s.apply({ type: 'applied', object: obj('a', '2', { v: 2 }) });
    assert.deepEqual(upd, [{ before: obj('a', '1'), after: obj('a', '2', { v: 2 }) }]);
    const del = s.apply({ type: 'deleted', object: obj('b', '3') });
    assert.deepEqual(del, [{ before: obj('b', '1') }]);
    const relist = s.apply({ type: 'restarted', objects: [obj('a', '5'), obj('c', '5')] });
    const byName = (c: Change<Obj>) => (c.after ?? c.before)!.metadata.name;
    assert.deepEqual(relist.map(byName).sort(), ['a', 'c']);
    s.apply({ type: 'restarted', objects: [obj('c', '6')] });
    assert.deepEqual([...s.keys()], ['c']);
  });

  it("keeps a reconciler's own write until the watch delivers it; older events meanwhile are skipped", () => {
    const s = new Store<Obj>();
    s.apply({ type: 'restarted', objects: [obj('a', 'r1', { v: 1 })] });
    assert.equal(s.observe(obj('a', 'w', { v: 3 })), true);
    // the watch is behind the write: what it delivers now is older than it
    assert.deepEqual(s.apply({ type: 'applied', object: obj('a', 'r2', { v: 2 }) }), []);
    assert.equal(s.get('a')?.spec?.v, 3);
    // the write's own event: from here on the watch is current again
    assert.equal(s.apply({ type: 'applied', object: obj('a', 'w', { v: 3 }) }).length, 1);
    s.apply({ type: 'applied', object: obj('a', 'r4', { v: 4 }) });
    assert.equal(s.get('a')?.spec?.v, 4);
  });

  it('does not observe a version the watch already delivered (the store has it or newer)', () => {
    const s = new Store<Obj>();
    s.apply({ type: 'restarted', objects: [] });
    s.apply({ type: 'applied', object: obj('a', 'w', { v: 1 }) });
    s.apply({ type: 'applied', object: obj('a', 'later', { v: 2 }) });
    assert.equal(s.observe(obj('a', 'w', { v: 1 })), false);
    assert.equal(s.get('a')?.spec?.v, 2);
    // nor an object the watch already deleted
    s.apply({ type: 'applied', object: obj('b', 'b1') });
    s.apply({ type: 'deleted', object: obj('b', 'b2') });
    assert.equal(s.observe(obj('b', 'b1')), false);
    assert.equal(s.has('b'), false);
  });

  it('an observed write whose event never comes stops holding back the watch after its TTL, and a relist ends it', () => {
    let now = 0;
    const s = new Store<Obj>({ writeTtlMs: 1000, now: () => now });
    s.apply({ type: 'restarted', objects: [obj('a', '1')] });
    s.observe(obj('a', 'w'));
    assert.deepEqual(s.apply({ type: 'applied', object: obj('a', '2') }), []);
    now = 1000;
    assert.equal(s.apply({ type: 'applied', object: obj('a', '3') }).length, 1);
    s.observe(obj('a', 'w2'));
    s.apply({ type: 'restarted', objects: [obj('a', '4')] });
    assert.equal(s.apply({ type: 'applied', object: obj('a', '5') }).length, 1);
  });

  it('keeps secondary indexes current', () => {
    const s = new Store<Obj>({ indexes: { node: (o) => o.spec?.node } });
    s.apply({
      type: 'restarted',
      objects: [obj('a', '1', { node: 'n1' }), obj('b', '1', { node: 'n1' }), obj('c', '1')],
    });
    assert.deepEqual(
      s.byIndex('node', 'n1').map((o) => o.metadata.name),
      ['a', 'b'],
    );
    s.apply({ type: 'applied', object: obj('a', '2', { node: 'n2' }) });
    s.apply({ type: 'deleted', object: obj('b', '3', { node: 'n1' }) });
    assert.deepEqual(s.byIndex('node', 'n1'), []);
    assert.deepEqual(
      s.byIndex('node', 'n2').map((o) => o.metadata.name),
      ['a'],
    );
    s.observe(obj('c', 'w', { node: 'n2' }));
    assert.deepEqual(
      s.byIndex('node', 'n2').map((o) => o.metadata.name),
      ['a', 'c'],
    );
  });
});

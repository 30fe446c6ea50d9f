// The service map from flow reports (one connection counted once, bytes within the window, the
// median RTT) and where the page draws it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LABEL_H, layoutMap } from '../../src/ui/page/map-layout.js';
import { serviceMap } from '../../src/ui/service-map.js';
import { makeFlow } from './fake-flow-source.js';

const now = Date.parse('2026-01-01T12:00:00Z');
const ago = (s: number): Date => new Date(now - s * 1000);
const a = { ns: 'ns', pod: 'a-7d4b9c6f5-x2x9k', ip: '10.0.0.1', port: 40000 };
const b = { ns: 'ns', pod: 'b-0', ip: '10.0.0.2', port: 80 };
const c = { ip: '192.0.2.9', port: 443 };

describe('service map', () => {
  it('counts a connection once, with the bytes it moved within the window', () => {
    const reports = [
      // one connection: reported before the window and twice in it, and by its other end
      makeFlow({ from: a, to: b, flow_id: 'x', time: ago(90), bytes: [1000, 1000], srtt_us: 500 }),
      makeFlow({ from: a, to: b, flow_id: 'x', time: ago(20), bytes: [1500, 2500], srtt_us: 100 }),
      makeFlow({ from: a, to: b, flow_id: 'x', time: ago(10), bytes: [2000, 3000], srtt_us: 300 }),
      makeFlow({
        from: a,
        to: b,
        flow_id: 'x-server',
        time: ago(5),
        bytes: [3000, 2000],
        srtt_us: 300,
        extra: { duration_ms: 100_000 },
      }),
      // another, from a later port, entirely in the window
      makeFlow({ from: { ...a, port: 40001 }, to: b, flow_id: 'y', time: ago(1), bytes: [10, 20], srtt_us: 100 }),
      // to an address without a pod, dropped
      makeFlow({
        from: a,
        to: c,
        flow_id: 'z',
        time: ago(3),
        verdict: 'DROPPED',
        extra: { drop_reason_desc: 'NO_ROUTE' },
      }),
      // too old, and in the future: not counted
      makeFlow({ from: b, to: c, flow_id: 'old', time: ago(120) }),
      makeFlow({ from: b, to: c, flow_id: 'future', time: new Date(now + 5000) }),
    ];
    const m = serviceMap(reports, 60, now);
    assert.deepEqual(
      m.nodes.map((n) => [n.id, n.kind]),
      [
        ['192.0.2.9', 'address'],
        ['ns/a', 'workload'],
        ['ns/b', 'workload'],
      ],
    );
    const ab = m.edges.find((e) => e.id === 'ns/a->ns/b')!;
    assert.equal(ab.flows, 2);
    // x: 5000 at its latest report (the server end's) less the 2000 of its report before the
    // window (the same connection: within the latest report's duration); y: 30
    assert.equal(ab.bytes, 3000 + 30);
    assert.equal(ab.p50_rtt_us, 200);
    assert.equal(ab.flow_rate, 2 / 60);
    assert.deepEqual(ab.ports, [80]);
    const ac = m.edges.find((e) => e.id === 'ns/a->192.0.2.9')!;
    assert.equal(ac.drops, 1);
    assert.deepEqual(ac.drop_reasons, ['NO_ROUTE']);
    assert.equal(ac.p50_rtt_us, undefined);
    assert.equal(m.edges.length, 2);
  });

  it('subtracts what a connection had moved before the window, not what an earlier one on its tuple did', () => {
    const earlier = makeFlow({ from: a, to: b, flow_id: 'x', time: ago(90), bytes: [1000, 1000] });
    const same = makeFlow({ from: a, to: b, flow_id: 'x', time: ago(10), bytes: [2000, 3000] });
    assert.equal(serviceMap([earlier, same], 60, now).edges[0]!.bytes, 3000);
    const reused = makeFlow({ from: a, to: b, flow_id: 'x2', time: ago(10), bytes: [2000, 3000] });
    assert.equal(serviceMap([earlier, reused], 60, now).edges[0]!.bytes, 5000);
  });

  it('lays clients out left of servers, one box per workload', () => {
    const chain = serviceMap(
      [makeFlow({ from: a, to: b, time: ago(1) }), makeFlow({ from: b, to: c, time: ago(1) })],
      60,
      now,
    );
    const l = layoutMap(chain.nodes, chain.edges);
    const x = (id: string): number => l.nodes.find((n) => n.node.id === id)!.x;
    assert.ok(x('ns/a') < x('ns/b') && x('ns/b') < x('192.0.2.9'));
    // a cycle is cut somewhere, and every edge still drawn, inside the picture
    const cycle = serviceMap([...chain.edges.map(() => makeFlow({ from: c, to: a, time: ago(1) }))], 60, now);
    const all = layoutMap([...chain.nodes], [...chain.edges, ...cycle.edges]);
    assert.equal(all.nodes.length, 3);
    assert.equal(new Set(all.nodes.map((n) => n.x)).size, 3, 'three columns, not a staircase');
    assert.equal(all.edges.length, 3);
    for (const e of all.edges) assert.match(e.path, /^M[\d.]+,[\d.]+ C/);
    for (const e of all.edges) assert.ok(e.labelY - LABEL_H / 2 >= 0, e.path);
    assert.ok(all.nodes.every((n) => n.y > 0 && n.x > 0 && n.x < all.width && n.y < all.height));
    assert.deepEqual(layoutMap([], []).nodes, []);
  });
});

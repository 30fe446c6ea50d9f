// The web view's HTTP API over a fake FlowSource: recent flows with the filters of `kbpf flows`,
// the Server-Sent Events stream (backlog, then live, filtered), the service map, the page's files,
// and what it refuses.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Flow } from '../../apps/flow-monitor/flow.js';
import { UiServer } from '../../src/ui/server.js';
import type { ServiceMap } from '../../src/ui/service-map.js';
import { FakeFlowSource, makeFlow } from './fake-flow-source.js';

const client = { ns: 'default', pod: 'client-7d4b9c6f5-x7k2p', ip: '10.1.0.2' };
const web = { ns: 'default', pod: 'web-7d4b9c6f5-4f8qz', ip: '10.1.0.3', port: 8080 };
const db = { ns: 'data', pod: 'db-0', ip: '10.1.0.4', port: 5432 };

describe('web view API', () => {
  const source = new FakeFlowSource();
  let server: UiServer;
  let base: string;
  before(async () => {
    server = new UiServer({ host: '127.0.0.1', port: 0, source, keepAliveMs: 50 });
    base = await server.start();
    source.add(
      makeFlow({ from: client, to: web, bytes: [1000, 5000], srtt_us: 200, flow_id: 'a' }),
      makeFlow({ from: client, to: web, bytes: [300, 700], srtt_us: 400, flow_id: 'b' }),
      makeFlow({
        from: { ...web, port: 41000 },
        to: db,
        verdict: 'DROPPED',
        flow_id: 'c',
        bytes: [60, 0],
        extra: { drop_reason_desc: 'POLICY_DENIED', policy_name: 'data/deny-web' },
      }),
      makeFlow({ from: client, to: { ip: '10.96.0.10', port: 53 }, protocol: 'udp', flow_id: 'd' }),
    );
  });
  after(() => server.close());

  const getJson = async <T>(path: string): Promise<{ status: number; body: T }> => {
    const r = await fetch(new URL(path, base));
    return { status: r.status, body: (await r.json()) as T };
  };
  const ids = async (query: string): Promise<string[]> => {
    const r = await getJson<Flow[]>(`api/flows?${query}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.map((f) => f.flow_id);
  };

  it('serves the bundled page with a policy that loads nothing from elsewhere', async () => {
    const r = await fetch(base);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/html/);
    assert.match(r.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'self'/);
    const html = await r.text();
    assert.match(html, /src="app\.js"/);
    const js = await fetch(new URL('app.js', base));
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.ok((await js.text()).length > 1000);
    assert.equal((await fetch(new URL('app.css', base))).status, 200);
    assert.equal((await fetch(new URL('nothing.js', base))).status, 404);
  });

  it('answers the last N flows, oldest first', async () => {
    assert.deepEqual(await ids(''), ['a', 'b', 'c', 'd']);
    assert.deepEqual(await ids('last=2'), ['c', 'd']);
    assert.deepEqual(await ids('last=0'), []);
  });

  it('filters like kbpf flows: fields AND, values OR, not negates', async () => {
    assert.deepEqual(await ids('verdict=DROPPED'), ['c']);
    assert.deepEqual(await ids('verdict=dropped&not=1'), ['a', 'b', 'd']);
    assert.deepEqual(await ids('protocol=udp'), ['d']);
    assert.deepEqual(await ids('port=8080,5432'), ['a', 'b', 'c']);
    assert.deepEqual(await ids('port=8080&port=5432'), ['a', 'b', 'c']);
    assert.deepEqual(await ids('port=8080&verdict=DROPPED'), []);
    assert.deepEqual(await ids('to-pod=data/db'), ['c']);
    assert.deepEqual(await ids('from-pod=default/client'), ['a', 'b', 'd']);
    assert.deepEqual(await ids('pod=web'), ['a', 'b', 'c']);
    assert.deepEqual(await ids('namespace=data'), ['c']);
    assert.deepEqual(await ids('to-ip=10.96.0.0/12'), ['d']);
    assert.deepEqual(await ids('from-ip=10.1.0.3'), ['c']);
    assert.deepEqual(await ids('tcp-flags=SYN'), ['a', 'b', 'c']);
    assert.deepEqual(await ids('tcp-flags=RST'), []);
    assert.deepEqual(await ids('verdict=FORWARDED&last=1'), ['d']);
  });

  it('refuses a filter value it does not take, naming the parameter', async () => {
    for (const [q, want] of [
      ['port=99999', /port: "99999"/],
      ['verdict=LOST', /verdict: "LOST" is not one of FORWARDED, DROPPED, REDIRECTED/],
      ['tcp-flags=XYZ', /tcp-flags/],
      ['last=-1', /last/],
      ['not=maybe', /not/],
    ] as const) {
      const r = await getJson<{ error: string }>(`api/flows?${q}`);
      assert.equal(r.status, 400, q);
      assert.match(r.body.error, want);
    }
    const m = await getJson<{ error: string }>('api/map?window=0');
    assert.equal(m.status, 400);
  });

  it('streams the backlog, then the matching flows as they come, as Server-Sent Events', async () => {
    const ac = new AbortController();
    const r = await fetch(new URL('api/flows/stream?last=5&verdict=DROPPED', base), { signal: ac.signal });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = r.body!.getReader();
    let text = '';
    const until = async (re: RegExp): Promise<void> => {
      while (!re.test(text)) {
        const { value, done } = await reader.read();
        if (done) assert.fail(`stream ended before ${re}: ${text}`);
        text += Buffer.from(value).toString();
      }
    };
    await until(/event: live\n/);
    const backlog = text.split('event: live')[0]!;
    assert.deepEqual(
      [...backlog.matchAll(/^data: (.*)$/gm)].map((m) => (JSON.parse(m[1]!) as Flow).flow_id),
      ['c'],
    );
    source.add(makeFlow({ from: client, to: web, flow_id: 'e' }));
    source.add(makeFlow({ from: client, to: db, verdict: 'DROPPED', flow_id: 'f' }));
    await until(/"flow_id":"f"/);
    assert.doesNotMatch(text, /"flow_id":"e"/);
    await until(/: keep-alive\n/);
    ac.abort();
    await reader.cancel().catch(() => {});
    for (let i = 0; i < 50 && source.followers > 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(source.followers, 0, 'the stream stopped following the source when the client went');
  });

  it('maps workloads and the flows between them with rate, bytes, drops and p50 RTT', async () => {
    const r = await getJson<ServiceMap>('api/map?window=60');
    assert.equal(r.status, 200);
    const nodes = r.body.nodes.map((n) => n.id);
    for (const id of ['default/client', 'default/web', 'data/db', '10.96.0.10']) assert.ok(nodes.includes(id), id);
    const edge = r.body.edges.find((e) => e.id === 'default/client->default/web')!;
    assert.equal(edge.flows, 3); // a, b and e
    assert.equal(edge.bytes, 6000 + 1000 + 300);
    assert.equal(edge.drops, 0);
    assert.equal(edge.p50_rtt_us, 300);
    assert.ok(Math.abs(edge.flow_rate - 3 / 60) < 1e-9);
    assert.deepEqual(edge.ports, [8080]);
    const drop = r.body.edges.find((e) => e.id === 'default/web->data/db')!;
    assert.equal(drop.drops, 1);
    assert.deepEqual(drop.drop_reasons, ['POLICY_DENIED data/deny-web']);
    const filtered = await getJson<ServiceMap>('api/map?window=60&verdict=DROPPED');
    assert.deepEqual(
      filtered.body.edges.map((e) => e.id),
      ['default/client->data/db', 'default/web->data/db'],
    );
  });

  it('answers only GET, and on loopback only to loopback host names', async () => {
    assert.equal((await fetch(new URL('api/flows', base), { method: 'POST' })).status, 405);
    const status = (host: string): Promise<number> =>
      new Promise((resolve, reject) => {
        const u = new URL('api/flows', base);
        const req = request({ host: u.hostname, port: u.port, path: u.pathname, headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    assert.equal(await status('evil.example:80'), 403);
    assert.equal(await status(`localhost:${new URL(base).port}`), 200);
    assert.equal(await status('[::1]:8090'), 200);
  });
});

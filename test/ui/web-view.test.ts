// The web view in a real browser: Debian's chromium, headless, driven by playwright-core, on the
// page the build bundled, over a fake FlowSource. The page loads and goes live; a flow added to
// the source shows in the table through the stream; a filter narrows the table; the map shows the
// edge with its numbers (and a click on it filters the table); a dropped flow's detail shows its
// reason and policy. Screenshots are saved under the test's temporary directory (their paths are
// printed as diagnostics).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';
import { UiServer } from '../../src/ui/server.js';
import { FakeFlowSource, makeFlow } from './fake-flow-source.js';

const CHROMIUM = '/usr/bin/chromium';
const client = { ns: 'shop', pod: 'frontend-6d9f7b8c4d-x7k2p', ip: '10.1.0.2' };
const cart = { ns: 'shop', pod: 'cart-5c6b7d8f9a-q2w3e', ip: '10.1.0.3', port: 8080 };
const db = { ns: 'data', pod: 'redis-0', ip: '10.1.0.4', port: 6379 };

const text = async (l: Locator): Promise<string> => (await l.textContent()) ?? '';

async function launch(): Promise<Browser | string> {
  if (!existsSync(CHROMIUM)) return `${CHROMIUM} is not installed (apt-get install chromium)`;
  try {
    return await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true, timeout: 30_000 });
  } catch (e) {
    return `chromium does not start here: ${(e as Error).message.split('\n')[0]}`;
  }
}

describe('web view in chromium', { timeout: 90_000 }, () => {
  const source = new FakeFlowSource();
  let server: UiServer;
  let browser: Browser | undefined;
  let skip: string | undefined;
  let page: Page;
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-web-view-'));

  before(async () => {
    // one flow before the page opens: it comes with the stream's backlog
    source.add(makeFlow({ from: client, to: cart, bytes: [1200, 3400], srtt_us: 180, flow_id: 'early' }));
    server = new UiServer({ host: '127.0.0.1', port: 0, source });
    await server.start();
    const b = await launch();
    if (typeof b === 'string') skip = b;
    else {
      browser = b;
      page = await browser.newPage({ viewport: { width: 1440, height: 960 } });
    }
  });
  after(async () => {
    await browser?.close();
    await server.close();
    // the screenshots go with the test's temp dir; KBPF_KEEP_SCREENSHOTS=1 keeps them to look at
    if (process.env.KBPF_KEEP_SCREENSHOTS !== '1') rmSync(dir, { recursive: true, force: true });
  });

  const rows = () => page.locator('table.flows tbody tr');

  it('loads, goes live and shows the backlog', async (t) => {
    if (skip) return t.skip(skip);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('requestfailed', (r) => errors.push(`${r.url()}: ${r.failure()?.errorText}`));
    await page.goto(server.url);
    await page.locator('[data-status="live"]').waitFor({ timeout: 10_000 });
    await rows().first().waitFor();
    assert.equal(await rows().count(), 1);
    assert.deepEqual(errors, []);
  });

  it('shows a flow just added to the source, live', async (t) => {
    if (skip) return t.skip(skip);
    source.add(
      makeFlow({
        from: client,
        to: cart,
        bytes: [800, 2600],
        srtt_us: 220,
        flow_id: 'live-1',
        extra: {
          destination_service: { name: 'cart', namespace: 'shop' },
          service: {
            vip: '10.96.12.7',
            vip_port: 80,
            name: 'shop/cart',
            backend: cart.ip,
            backend_port: cart.port,
            lb_policy: 'round-robin',
          },
        },
      }),
      makeFlow({
        from: { ...cart, port: 45123 },
        to: db,
        verdict: 'DROPPED',
        bytes: [74, 0],
        flow_id: 'denied-1',
        extra: { drop_reason_desc: 'POLICY_DENIED', policy_name: 'data/redis-only-from-api', tcp_state: 'SYN_SENT' },
      }),
    );
    await page.locator('tr[data-flow-id="live-1"]').waitFor({ timeout: 5000 });
    await page.locator('tr[data-flow-id="denied-1"]').waitFor({ timeout: 5000 });
    const live = await text(page.locator('tr[data-flow-id="live-1"]'));
    assert.match(live, /shop\/frontend-6d9f7b8c4d-x7k2p/);
    assert.match(live, /shop\/cart/); // the service, from the socket-LB translation
    assert.equal(await rows().count(), 3);
    // newest first
    assert.equal(await rows().first().getAttribute('data-flow-id'), 'denied-1');
  });

  it('narrows the table with a filter, and widens it again', async (t) => {
    if (skip) return t.skip(skip);
    await page.fill('input[name="to-pod"]', 'data/redis');
    await page.waitForFunction(() => document.querySelectorAll('table.flows tbody tr').length === 1);
    assert.equal(await rows().first().getAttribute('data-flow-id'), 'denied-1');
    assert.match(page.url(), /to-pod=data%2Fredis/);
    await page.fill('input[name="to-pod"]', '');
    await page.click('label.chip:has(input[name="verdict-DROPPED"])');
    await page.click('label.chip.not');
    await page.waitForFunction(() => document.querySelectorAll('table.flows tbody tr').length === 2);
    assert.equal(await page.locator('tr[data-flow-id="denied-1"]').count(), 0);
    await page.click('button.clear');
    await page.waitForFunction(() => document.querySelectorAll('table.flows tbody tr').length === 3);
  });

  it('maps the workloads with the edge and its numbers', async (t) => {
    if (skip) return t.skip(skip);
    const edge = page.locator('g[data-edge-id="shop/frontend->shop/cart"]');
    await edge.waitFor({ timeout: 10_000 });
    // refreshed every 2 s: wait for the map that counts both flows
    await page.waitForFunction(
      () => document.querySelector('g[data-edge-id="shop/frontend->shop/cart"]')?.textContent?.includes('8.0 kB'),
      undefined,
      { timeout: 10_000 },
    );
    const label = await text(edge);
    assert.match(label, /0\.03 flows\/s/); // 2 connections over the 60 s window
    assert.match(label, /8\.0 kB/); // 1200+3400+800+2600 bytes
    assert.match(label, /0 drops/);
    assert.match(label, /p50 200 µs/); // the median of 180 and 220
    const dropped = await text(page.locator('g[data-edge-id="shop/cart->data/redis"]'));
    assert.match(dropped, /1 drop\b/);
    for (const n of ['shop/frontend', 'shop/cart', 'data/redis'])
      assert.equal(await page.locator(`g[data-node-id="${n}"]`).count(), 1, n);
    await page.screenshot({ path: join(dir, 'web-view-map.png'), fullPage: true });
    t.diagnostic(`screenshot: ${join(dir, 'web-view-map.png')}`);
    // a click on an edge shows the flows between its two workloads
    await page.click('g[data-edge-id="shop/cart->data/redis"]');
    assert.equal(await page.inputValue('input[name="from-pod"]'), 'shop/cart');
    assert.equal(await page.inputValue('input[name="to-pod"]'), 'data/redis');
    await page.waitForFunction(() => document.querySelectorAll('table.flows tbody tr').length === 1);
    assert.equal(await rows().first().getAttribute('data-flow-id'), 'denied-1');
    await page.click('button.clear');
    await page.waitForFunction(() => document.querySelectorAll('table.flows tbody tr').length === 3);
  });

  it("shows a dropped flow's reason and policy on click, and saves a screenshot", async (t) => {
    if (skip) return t.skip(skip);
    await page.click('tr[data-flow-id="denied-1"]');
    const detail = page.locator('aside.detail');
    await detail.waitFor();
    const shown = await text(detail);
    assert.match(shown, /POLICY_DENIED/);
    assert.match(shown, /data\/redis-only-from-api/);
    assert.match(shown, /10\.1\.0\.4:6379/);
    assert.match(shown, /SYN_SENT/);
    const shot = join(dir, 'web-view.png');
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(existsSync(shot));
    t.diagnostic(`screenshot: ${shot}`);
    // the detail follows the selection: a translated flow shows its VIP and backend
    await page.click('tr[data-flow-id="live-1"]');
    await page.waitForFunction(() => document.querySelector('aside.detail')?.textContent?.includes('10.96.12.7:80'));
    assert.match(await text(detail), /10\.96\.12\.7:80 → 10\.1\.0\.3:8080/);
    assert.match(await text(detail), /round-robin/);
    // a connection mesh-accel sent to the sidecar: REDIRECTED in the table, its proxy port in the detail
    source.add(
      makeFlow({
        from: { ...cart, port: 45200 },
        to: db,
        verdict: 'REDIRECTED',
        flow_id: 'redirected-1',
        extra: { proxy_port: 15001 },
      }),
    );
    const redirected = page.locator('tr[data-flow-id="redirected-1"]');
    await redirected.waitFor({ timeout: 5000 });
    assert.match(await text(redirected), /REDIRECTED/);
    await redirected.click();
    await page.waitForFunction(() => document.querySelector('aside.detail')?.textContent?.includes('15001'));
    assert.match(await text(detail), /proxy port\s*15001/);
  });
});

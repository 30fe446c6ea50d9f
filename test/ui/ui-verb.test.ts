// `kbpf ui`: serves the web view of the instance's flows on the address asked for until its signal
// stops it; refuses an address that is not HOST:PORT before anything starts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import type { Flow } from '../../apps/flow-monitor/flow.js';
import { CliContext } from '../../src/cli/context.js';
import { runCli } from '../../src/cli/program.js';
import { addUiVerbs } from '../../src/cli/verbs/ui.js';
import { FakeFlowSource, makeFlow } from './fake-flow-source.js';

test('kbpf ui serves the flows of the instance named until stopped', async () => {
  const source = new FakeFlowSource();
  source.add(makeFlow({ from: { ip: '10.0.0.1' }, to: { ip: '10.0.0.2', port: 80 }, flow_id: 'one' }));
  const asked: string[] = [];
  let err = '';
  const ac = new AbortController();
  const ctx = new CliContext({
    stdout: () => {},
    stderr: (s) => {
      err += s;
    },
    env: {},
    signal: ac.signal,
  });
  const program = new Command('kbpf').exitOverride();
  addUiVerbs(program, ctx, async (_ctx, _cmd, instance) => {
    asked.push(instance);
    return source;
  });
  const done = program.parseAsync(['ui', '--listen', '127.0.0.1:0', '--instance', 'fm'], { from: 'user' });
  for (let i = 0; i < 200 && !/http:\/\//.test(err); i++) await new Promise((r) => setTimeout(r, 10));
  const url = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(err)?.[1];
  assert.ok(url, err);
  assert.match(err, /the flows of fm at/);
  assert.deepEqual(asked, ['fm']);
  const flows = (await (await fetch(new URL('api/flows', url))).json()) as Flow[];
  assert.deepEqual(
    flows.map((f) => f.flow_id),
    ['one'],
  );
  ac.abort();
  await done;
  await assert.rejects(fetch(url), 'the server is closed once the verb returns');
});

test('kbpf ui refuses a listen address that is not HOST:PORT', async () => {
  let err = '';
  const code = await runCli(['ui', '--listen', 'localhost'], {
    stdout: () => {},
    stderr: (s) => {
      err += s;
    },
    env: {},
  });
  assert.notEqual(code, 0);
  assert.match(err, /--listen: "localhost" is not HOST:PORT/);
});

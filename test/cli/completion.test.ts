// Shell completion of kbpf: the bash and zsh scripts (`kbpf completion bash|zsh`), run by the
// real shells, complete verbs, flags and an instance name read from the agent (a fake one here).
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startApiServer } from '../../src/agent/api-server.js';
import { FakeAgent } from './fake-agent.js';

// async: the fake agent answers from this process
const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../../bin/kbpf.js', import.meta.url));

function hasShell(sh: string): boolean {
  return spawnSync(sh, ['-c', 'true']).status === 0;
}

async function fixture(t: { after(fn: () => unknown): void }) {
  const dir = mkdtempSync(join(tmpdir(), 'kbpf-complete-'));
  const socket = join(dir, 'agent.sock');
  const agent = new FakeAgent();
  const server = await startApiServer(agent, socket);
  // `kbpf` on PATH, as an install puts it
  symlinkSync(BIN, join(dir, 'kbpf'));
  t.after(async () => {
    await server.close();
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await agent.run({ image: 'opensnoop:1.0.0', name: 'open-files' });
  const env = { ...process.env, PATH: `${dir}:${process.env.PATH}` };
  return { dir, socket, env };
}

test('kbpf completion bash: verbs, flags, flag values and instance names from the agent', async (t) => {
  const f = await fixture(t);
  const script = execFileSync(process.execPath, [BIN, 'completion', 'bash'], { encoding: 'utf8' });
  /** what bash's completion offers for the words (the last being completed) */
  const bash = async (words: string[]): Promise<string[]> => {
    const arr = ['kbpf', ...words].map((w) => `'${w}'`).join(' ');
    const { stdout: out } = await run(
      'bash',
      [
        '-c',
        `${script}\nCOMP_WORDS=(${arr}); COMP_CWORD=${words.length}; _kbpf_complete; printf '%s\\n' "\${COMPREPLY[@]}"`,
      ],
      { encoding: 'utf8', env: f.env },
    );
    return out.split('\n').filter(Boolean);
  };
  assert.deepEqual(await bash(['--socket', f.socket, 'logs', 'op']), ['open-files'], 'an instance name');
  assert.deepEqual(await bash(['--socket', f.socket, 'inspect', '']), ['open-files']);
  assert.ok((await bash(['ro'])).includes('rollback'));
  assert.deepEqual(await bash(['ps', '-o', 'y']), ['yaml']);
  assert.ok((await bash(['logs', '--f'])).includes('--follow'));
  assert.ok((await bash(['--socket', f.socket, 'run', 'opensnoop:'])).includes('opensnoop:1.0.0'), 'a package name');
});

test('kbpf completion zsh: the same candidates through zsh', {
  skip: hasShell('zsh') ? false : 'needs zsh',
}, async (t) => {
  const f = await fixture(t);
  const script = execFileSync(process.execPath, [BIN, 'completion', 'zsh'], { encoding: 'utf8' });
  execFileSync('zsh', ['-n', '-c', script]);
  // outside a completion widget: compadd and _files stand in, words and CURRENT set by hand
  const zsh = async (words: string[]): Promise<string[]> =>
    (
      await run(
        'zsh',
        [
          '-c',
          `compadd() { [[ $1 == -- ]] && shift; print -l -- "$@" }\n_files() { print -- FILES }\n${script}\nwords=(kbpf ${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length + 1}; _kbpf_complete`,
        ],
        { encoding: 'utf8', env: f.env },
      )
    ).stdout
      .split('\n')
      .filter(Boolean);
  assert.deepEqual(await zsh(['--socket', f.socket, 'logs', 'op']), ['open-files']);
  assert.ok((await zsh(['st'])).includes('stop'));
  assert.deepEqual(await zsh(['run', './']), ['FILES'], 'run completes file names');
});

// A throw-away agent for tests: its own state dir and bpffs dir, removed with everything it
// pinned when the test ends.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBpffs } from 'kbpf/bpf';
import { Agent, type AgentOptions } from '../src/agent/agent.js';
import { type AgentPaths, agentPaths } from '../src/agent/paths.js';
import { buildPackage } from '../src/compile/builder.js';
import { uniqueName } from './kernel.js';
import { type MadeIds, madeIds } from './netns.js';

export const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
export const VMLINUX_CACHE = fileURLToPath(new URL('../../build/', import.meta.url));

export interface TestAgent {
  agent: Agent;
  paths: AgentPaths;
  build(dir: string, tag?: string): Promise<string>;
  /** a copy of an example with edits applied to its .bpf.c / kbpf.yaml */
  variant(example: string, edit: (file: string, text: string) => string): string;
}

export async function testAgent(
  t: { after(fn: () => unknown): void },
  opts: Omit<AgentOptions, 'log'> = {},
): Promise<TestAgent> {
  ensureBpffs();
  const state = mkdtempSync(join(tmpdir(), 'kbpf-agent-'));
  const paths = agentPaths(state, `/sys/fs/bpf/${uniqueName('kbpf-test')}`);
  let agent = new Agent(paths, { ...opts, log: () => {} });
  await agent.start();
  const dirs: string[] = [state];
  t.after(async () => {
    try {
      for (const s of agent.list()) await agent.remove(s.name, { force: true }).catch(() => {});
      await agent.close();
    } finally {
      // whatever the agent could not remove: its pins hold the rest, so this detaches it too
      rmSync(paths.bpffsDir, { recursive: true, force: true });
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    }
  });
  return {
    get agent() {
      return agent;
    },
    set agent(a: Agent) {
      agent = a;
    },
    paths,
    async build(dir: string, tag?: string) {
      const r = await buildPackage(dir, { tag, store: agent.store, cacheDir: VMLINUX_CACHE });
      return r.stored.reference;
    },
    variant(example: string, edit: (file: string, text: string) => string) {
      const dir = mkdtempSync(join(tmpdir(), 'kbpf-src-'));
      dirs.push(dir);
      cpSync(join(EXAMPLES, example), dir, { recursive: true });
      for (const f of [`${example}.bpf.c`, 'kbpf.yaml']) {
        const p = join(dir, f);
        writeFileSync(p, edit(f, readFileSync(p, 'utf8')));
      }
      return dir;
    },
  } as TestAgent;
}

/** Kernel ids of what an instance runs (programs, pinned maps, links), as the agent reports them; none once it is gone. */
export function instanceKernelIds(agent: Agent, name: string): MadeIds {
  const made = madeIds();
  let st: ReturnType<Agent['inspect']>;
  try {
    st = agent.inspect(name);
  } catch {
    return made;
  }
  for (const p of st.programs) {
    if (p.progId !== undefined) made.prog.push(p.progId);
    if (p.linkId !== undefined) made.link.push(p.linkId);
  }
  for (const m of st.maps) if (m.mapId !== undefined) made.map.push(m.mapId);
  return made;
}

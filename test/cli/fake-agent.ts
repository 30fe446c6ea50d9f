// An in-memory stand-in for the Agent, implementing what the API server needs: lets the API and
// the CLI be tested without a kernel. It records the calls it gets.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AgentApi } from '../../src/agent/api-server.js';
import { LogStore } from '../../src/agent/log-store.js';
import type { InstanceStatus, PackageRemoval, Revision, RunRequest, UpgradeRequest } from '../../src/agent/types.js';
import type { KernelFeatures } from '../../src/bpf/features.js';
import { ConflictError, InvalidError, NotFoundError } from '../../src/errors.js';
import type { PackageSummary } from '../../src/package/layout-store.js';
import type { PackageSpec } from '../../src/package/package-spec.js';

export const SPEC: PackageSpec = {
  name: 'opensnoop',
  version: '1.0.0',
  objects: ['opensnoop.bpf.o'],
  programs: [
    {
      name: 'handle_openat',
      object: 'opensnoop.bpf.o',
      section: 'tracepoint/syscalls/sys_enter_openat',
      type: 'tracepoint',
      attach: { hook: 'tracepoint', target: 'syscalls/sys_enter_openat' },
    },
  ],
  config: [{ name: 'target_pid', object: 'opensnoop.bpf.o', section: '.rodata', type: 'u32', size: 4, default: 0 }],
  maps: [],
  events: [{ map: 'events', object: 'opensnoop.bpf.o', kind: 'ringbuf', type: 'event' }],
  builder: '0.1.0',
};

const DIGEST1 = `sha256:${'1'.repeat(64)}`;
const DIGEST2 = `sha256:${'2'.repeat(64)}`;

interface Inst {
  status: InstanceStatus;
  revisions: Revision[];
}

export class FakeAgent implements AgentApi {
  readonly logDir = mkdtempSync(join(tmpdir(), 'kbpf-fake-logs-'));
  readonly logs = new LogStore(this.logDir, { pollMs: 50, flushMs: 20 });
  readonly calls: { verb: string; args: unknown[] }[] = [];
  readonly instances = new Map<string, Inst>();
  readonly imageList: PackageSummary[] = [
    {
      name: 'opensnoop',
      tags: ['1.0.0'],
      digest: DIGEST1,
      size: 12345,
      version: '1.0.0',
      created: new Date().toISOString(),
    },
    {
      name: 'opensnoop',
      tags: ['2.0.0'],
      digest: DIGEST2,
      size: 12400,
      version: '2.0.0',
      created: new Date().toISOString(),
    },
  ];
  /** make the next call throw this */
  failNext?: Error;

  private call(verb: string, ...args: unknown[]): void {
    this.calls.push({ verb, args });
    const f = this.failNext;
    this.failNext = undefined;
    if (f) throw f;
  }

  private get(name: string): Inst {
    const i = this.instances.get(name);
    if (!i) throw new NotFoundError(`no instance named "${name}" (see: kbpf ps)`);
    return i;
  }

  private digestOf(image: string): string {
    if (image === 'opensnoop:1.0.0') return DIGEST1;
    if (image === 'opensnoop:2.0.0') return DIGEST2;
    throw new NotFoundError(`no package ${image} in the local store (see: kbpf images)`);
  }

  list(): InstanceStatus[] {
    this.call('list');
    return [...this.instances.values()].map((i) => i.status);
  }

  inspect(name: string): InstanceStatus {
    this.call('inspect', name);
    return this.get(name).status;
  }

  async run(req: RunRequest): Promise<InstanceStatus> {
    this.call('run', req);
    const digest = this.digestOf(req.image);
    const name = req.name ?? 'opensnoop-abc123';
    if (this.instances.has(name))
      throw new ConflictError(`an instance named "${name}" already exists (remove it with: kbpf rm ${name})`);
    if (req.config)
      for (const k of Object.keys(req.config))
        if (k !== 'target_pid')
          throw new InvalidError(`unknown config variable "${k}"; this package has: target_pid (u32)`);
    const createdAt = new Date().toISOString();
    const status: InstanceStatus = {
      name,
      image: req.image,
      digest,
      package: { name: 'opensnoop', version: req.image.split(':')[1]! },
      revision: 1,
      desired: 'running',
      phase: 'running',
      createdAt,
      programs: [
        {
          name: 'handle_openat',
          type: 'tracepoint',
          attach: 'tracepoint syscalls/sys_enter_openat',
          progId: 42,
          linkId: 7,
        },
      ],
      maps: [{ name: 'events', type: 'ringbuf', mapId: 9 }],
      config: req.config ?? {},
      events: { received: 0, lost: 0 },
    };
    this.instances.set(name, {
      status,
      revisions: [
        {
          revision: 1,
          image: req.image,
          digest,
          config: req.config ?? {},
          attach: req.attach ?? {},
          createdAt,
          cause: 'run',
        },
      ],
    });
    return status;
  }

  async stop(name: string): Promise<InstanceStatus> {
    this.call('stop', name);
    const i = this.get(name);
    i.status = { ...i.status, desired: 'stopped', phase: 'stopped' };
    return i.status;
  }

  async startInstance(name: string): Promise<InstanceStatus> {
    this.call('start', name);
    const i = this.get(name);
    i.status = { ...i.status, desired: 'running', phase: 'running' };
    return i.status;
  }

  async remove(name: string, opts: { force?: boolean } = {}): Promise<void> {
    this.call('remove', name, opts);
    const i = this.get(name);
    if (i.status.desired === 'running' && !opts.force)
      throw new ConflictError(`instance ${name} is running: stop it first, or remove it with rm -f`);
    this.instances.delete(name);
    await this.logs.remove(name);
  }

  async upgrade(name: string, req: UpgradeRequest): Promise<InstanceStatus> {
    this.call('upgrade', name, req);
    const i = this.get(name);
    const digest = this.digestOf(req.image);
    const rev = i.revisions.length + 1;
    i.revisions.push({
      revision: rev,
      image: req.image,
      digest,
      config: req.config ?? i.status.config,
      attach: req.attach ?? {},
      createdAt: new Date().toISOString(),
      cause: 'upgrade',
    });
    i.status = { ...i.status, image: req.image, digest, revision: rev, config: req.config ?? i.status.config };
    return i.status;
  }

  async rollback(name: string, opts: { toRevision?: number } = {}): Promise<InstanceStatus> {
    this.call('rollback', name, opts);
    const i = this.get(name);
    const target =
      opts.toRevision !== undefined
        ? i.revisions.find((r) => r.revision === opts.toRevision)
        : i.revisions[i.revisions.length - 2];
    if (!target) throw new ConflictError(`instance ${name} has no earlier revision to roll back to`);
    const rev = i.revisions.length + 1;
    i.revisions.push({ ...target, revision: rev, cause: 'rollback', createdAt: new Date().toISOString() });
    i.status = { ...i.status, image: target.image, digest: target.digest, revision: rev };
    return i.status;
  }

  history(name: string): Revision[] {
    this.call('history', name);
    return this.get(name).revisions;
  }

  maps(name: string, map?: string): { name: string; type: string; entries: [unknown, unknown][] }[] {
    this.call('maps', name, map);
    this.get(name);
    const all = [
      {
        name: 'counts',
        type: 'hash',
        entries: [
          [1, 10],
          [2, 20],
        ] as [unknown, unknown][],
      },
      { name: 'events', type: 'ringbuf', entries: [] as [unknown, unknown][] },
    ];
    if (map === undefined) return all;
    const m = all.filter((x) => x.name === map);
    if (m.length === 0) throw new NotFoundError(`instance ${name} has no pinned map "${map}" (maps: counts, events)`);
    return m;
  }

  /** Each address as `fn_ADDRESS (pid PID)`, an id as `stack MAP#ID`. */
  stacks(
    name: string,
    requests: readonly { pid?: number; addresses?: unknown[]; map?: string; id?: number }[],
  ): string[][] {
    this.call('stacks', name, requests);
    this.get(name);
    return requests.map((r) =>
      r.map !== undefined
        ? [`stack ${r.map}#${r.id}`]
        : (r.addresses ?? []).filter((a) => a !== 0).map((a) => `fn_${String(a)} (pid ${r.pid ?? '-'})`),
    );
  }

  async packages(): Promise<PackageSummary[]> {
    this.call('packages');
    return this.imageList;
  }

  async inspectPackage(ref: string): Promise<{ reference: string; digest: string; spec: PackageSpec }> {
    this.call('inspectPackage', ref);
    return { reference: ref, digest: this.digestOf(ref), spec: SPEC };
  }

  async removePackage(ref: string, opts: { force?: boolean } = {}): Promise<PackageRemoval> {
    this.call('removePackage', ref, opts);
    const digest = this.digestOf(ref);
    const users = [...this.instances.values()].filter((i) => i.status.digest === digest).map((i) => i.status.name);
    if (users.length && !opts.force)
      throw new ConflictError(
        `image ${ref} is used by instance(s) ${users.join(', ')}: remove them first, or use rmi --force (which removes them too)`,
      );
    for (const u of users) this.instances.delete(u);
    return { removed: [ref], instancesRemoved: users, blobsRemoved: 0, freedBytes: 0 };
  }

  metricsSnapshot() {
    this.call('metricsSnapshot');
    return {
      instances: [...this.instances.values()].map((i) => ({
        name: i.status.name,
        phase: i.status.phase,
        eventsReceived: 5,
        eventsLost: 1,
        programs: [{ name: 'handle_openat', progId: 42, runCount: 1234n, runTimeNs: 5_000_000_123n }],
      })),
    };
  }

  async doctor(): Promise<KernelFeatures> {
    this.call('doctor');
    return {
      kernel: '6.1.0-test',
      btf: true,
      jit: true,
      unprivilegedBpf: false,
      libbpf: '1.1.0',
      programTypes: { tracepoint: 'yes', xdp: 'yes', lsm: 'no' },
      mapTypes: { hash: 'yes', ringbuf: 'yes', arena: 'unknown' },
      hooks: { fentry: { supported: 'yes', detail: 'BTF trampolines' }, tcx: { supported: 'no', detail: 'needs 6.6' } },
    };
  }

  async close(): Promise<void> {
    await this.logs.close();
    rmSync(this.logDir, { recursive: true, force: true });
  }
}

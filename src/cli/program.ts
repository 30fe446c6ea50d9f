// The `kbpf` command line: verbs, their options and what they print. Everything but `agent`,
// `build`, `push` and `pull` goes through the agent's API (src/agent/api-client.ts).

import { join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ApiClient, ApiError } from '../agent/api-client.js';
import { parseDuration } from '../agent/api-server.js';
import type { LogRecord } from '../agent/log-store.js';
import { type AgentPaths, agentPaths, DEFAULT_BPFFS_DIR, DEFAULT_STATE_DIR } from '../agent/paths.js';
import type { InstanceStatus } from '../agent/types.js';
import { LayoutStore } from '../package/layout-store.js';
import type { AttachOverrides } from '../package/package-spec.js';
import { KBPF_VERSION } from '../version.js';
import { ago, cell, json, LogTable, shortDigest, shortRef, size, table } from './format.js';

export interface CliIo {
  stdout(s: string): void;
  stderr(s: string): void;
  env: NodeJS.ProcessEnv;
  /** ends `logs -f` and `agent` (default: SIGINT / SIGTERM) */
  signal?: AbortSignal;
  /** called when `kbpf agent` has stopped cleanly (the entry point exits then) */
  onAgentStopped?: () => void;
}

/** An error the CLI reports as `kbpf: <message>` (exit 1). */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

interface Globals {
  stateDir: string;
  socket: string;
  bpffsDir: string;
}

type OutputFormat = 'table' | 'text' | 'json';

// ---- option parsers ----

const VAR_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

function keyValue(what: string, keyRe: RegExp, keyDesc: string) {
  return (value: string, previous: [string, string][] = []): [string, string][] => {
    const i = value.indexOf('=');
    if (i <= 0) throw new InvalidArgumentError(`expected ${what} (got "${value}")`);
    const key = value.slice(0, i);
    if (!keyRe.test(key)) throw new InvalidArgumentError(`"${key}" is not ${keyDesc}`);
    return [...previous, [key, value.slice(i + 1)]];
  };
}

const parseSet = keyValue('var=value', VAR_RE, 'a config variable name (letters, digits and _)');
const parseAttach = keyValue('program=target', /^[A-Za-z_][A-Za-z0-9_.-]*$/, 'a program name');

function nonNegativeInt(what: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError(`${what} must be a non-negative integer`);
    return Number(v);
  };
}

function positiveInt(what: string) {
  return (v: string): number => {
    if (!/^[1-9]\d*$/.test(v)) throw new InvalidArgumentError(`${what} must be a positive integer`);
    return Number(v);
  };
}

/** --since: a duration back from now (30s, 5m, 1h30m, 2d) or a time (2024-05-01T10:00:00Z, Unix seconds). */
export function parseSinceArg(v: string, now = Date.now()): string {
  const d = parseDuration(v);
  if (d !== undefined) return new Date(now - d).toISOString();
  if (/^\d+(\.\d+)?$/.test(v)) return new Date(Number(v) * 1000).toISOString();
  const t = Date.parse(v);
  if (Number.isNaN(t))
    throw new InvalidArgumentError('expected a duration (30s, 5m, 1h) or a time (2024-05-01T10:00:00Z)');
  return new Date(t).toISOString();
}

function outputOption(human: 'table' | 'text' = 'table'): Option {
  return new Option('-o, --output <format>', `output format: ${human} or json`).choices([human, 'json']).default(human);
}

function attachOverrides(opts: {
  cgroup?: string;
  iface?: string;
  attach?: [string, string][];
}): AttachOverrides | undefined {
  const a: AttachOverrides = {};
  if (opts.cgroup) a.cgroup = opts.cgroup;
  if (opts.iface) a.iface = opts.iface;
  if (opts.attach?.length) a.programs = Object.fromEntries(opts.attach);
  return Object.keys(a).length ? a : undefined;
}

function configOf(set?: [string, string][]): Record<string, string> | undefined {
  return set?.length ? Object.fromEntries(set) : undefined;
}

function addAttachOptions(cmd: Command): Command {
  return cmd
    .option('--set <var=value>', 'set a config variable of the package (repeatable)', parseSet)
    .option('--cgroup <path>', 'cgroup that cgroup programs attach to')
    .option('--iface <name>', 'network interface that xdp and tc programs attach to')
    .option(
      '--attach <program=target>',
      'attach one program somewhere else than its package says (repeatable)',
      parseAttach,
    );
}

// ---- printing ----

function statusText(s: InstanceStatus): string {
  if (s.phase === 'running' && s.desired === 'running') return 'running';
  if (s.phase === 'stopped' && s.desired === 'stopped') return 'stopped';
  return s.desired === s.phase ? s.phase : `${s.phase} (want ${s.desired})`;
}

function describeInstance(s: InstanceStatus): string {
  const lines = [`${s.name}: ${statusText(s)}, ${s.image} (${shortDigest(s.digest)}), revision ${s.revision}`];
  if (s.message) lines.push(`  ${s.message}`);
  const rows = s.programs.map((p) => [
    `  ${p.name}`,
    p.type,
    p.attach,
    p.progId !== undefined ? String(p.progId) : '',
    p.linkId !== undefined ? String(p.linkId) : '',
  ]);
  if (rows.length) lines.push(table(['  PROGRAM', 'TYPE', 'ATTACH', 'PROG ID', 'LINK ID'], rows).trimEnd());
  const cfg = Object.entries(s.config ?? {});
  if (cfg.length) lines.push(`  config: ${cfg.map(([k, v]) => `${k}=${cell(v)}`).join(' ')}`);
  return `${lines.join('\n')}\n`;
}

function printDetails(io: CliIo, details: unknown): void {
  if (details === undefined || details === null) return;
  const text =
    typeof details === 'string'
      ? details
      : Array.isArray(details) && details.every((d) => typeof d === 'string')
        ? details.join('\n')
        : JSON.stringify(details, null, 2);
  io.stderr(`${text.replace(/^/gm, '  ').trimEnd()}\n`);
}

/** Prints an error the way the CLI does: `kbpf: message` (stack only with KBPF_DEBUG=1). */
export function reportError(io: CliIo, err: unknown): void {
  const e = err as { message?: string; stack?: string; details?: unknown };
  io.stderr(`kbpf: ${e?.message ?? String(err)}\n`);
  if (err instanceof ApiError) printDetails(io, err.details);
  if (io.env.KBPF_DEBUG === '1' && e?.stack) io.stderr(`${e.stack}\n`);
}

// ---- the program ----

export function buildProgram(io: CliIo): Command {
  const program = new Command('kbpf');
  program
    .description('eBPF programs shipped and run like containers')
    .version(KBPF_VERSION, '-V, --version', 'print the kbpf version')
    .option('--state-dir <dir>', `the agent's state directory (env KBPF_STATE_DIR; default ${DEFAULT_STATE_DIR})`)
    .option('--socket <path>', "the agent's API socket (env KBPF_SOCKET; default STATE_DIR/agent.sock)")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      outputError: (s, write) => write(`kbpf: ${s.replace(/^error: /, '')}`),
    })
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .showSuggestionAfterError(true)
    .addHelpText(
      'after',
      '\nAliases of the first prototype: list (ps), log (logs), delete (rm), packages (images), show (inspect), clear (rm every instance).\nSee docs/cli.md.',
    );

  const globals = (cmd: Command): Globals => {
    const o = cmd.optsWithGlobals() as { stateDir?: string; socket?: string; bpffsDir?: string };
    const stateDir = o.stateDir ?? io.env.KBPF_STATE_DIR ?? DEFAULT_STATE_DIR;
    return {
      stateDir,
      socket: o.socket ?? io.env.KBPF_SOCKET ?? join(stateDir, 'agent.sock'),
      bpffsDir: o.bpffsDir ?? io.env.KBPF_BPFFS_DIR ?? DEFAULT_BPFFS_DIR,
    };
  };
  const paths = (g: Globals): AgentPaths => ({ ...agentPaths(g.stateDir, g.bpffsDir), socketPath: g.socket });
  const client = (cmd: Command): ApiClient => new ApiClient(globals(cmd).socket);
  const out = (s: string): void => io.stdout(s);
  const cmd = (name: string, description: string): Command => program.command(name).description(description);

  // ---- agent ----
  cmd('agent', 'run the node agent in the foreground (programs keep running when it stops)')
    .option('--bpffs-dir <dir>', `the agent's directory in bpffs (env KBPF_BPFFS_DIR; default ${DEFAULT_BPFFS_DIR})`)
    .option('--metrics-address <host:port>', 'also serve GET /metrics over TCP here (the API stays on the unix socket)')
    .option(
      '--bpf-stats',
      "turn on the kernel's BPF run-time statistics while the agent runs (program run count and time in metrics; costs a little per program run)",
    )
    .addHelpText(
      'after',
      '\nThe API listens on --socket (mode 0600); SIGINT/SIGTERM stop the agent, leaving programs attached.',
    )
    .action(async (opts: { metricsAddress?: string; bpfStats?: boolean }, c: Command) => {
      const { runAgent } = await import('./agent-command.js');
      let metrics: { host: string; port: number } | undefined;
      if (opts.metricsAddress) {
        const m = /^(.*):(\d+)$/.exec(opts.metricsAddress);
        if (!m) throw new CliError(`--metrics-address: expected host:port, got "${opts.metricsAddress}"`);
        metrics = { host: m[1]!.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1', port: Number(m[2]) };
      }
      await runAgent(paths(globals(c)), { io, metrics, signal: io.signal, bpfStats: !!opts.bpfStats });
      io.onAgentStopped?.();
    });

  // ---- build / push / pull: the local store, no agent needed ----
  cmd('build', 'compile a source directory (*.bpf.c + kbpf.yaml) into a package in the local store')
    .argument('<dir>', 'source directory')
    .option('-t, --tag <name:version>', 'name and version of the package (default: from kbpf.yaml)')
    .option('-q, --quiet', 'print only the reference')
    .addOption(outputOption('text'))
    .action(async (dir: string, opts: { tag?: string; quiet?: boolean; output: OutputFormat }, c: Command) => {
      const p = paths(globals(c));
      const { buildPackage } = await import('../compile/builder.js');
      const store = new LayoutStore(p.storeDir);
      const verbose = !opts.quiet && opts.output !== 'json';
      const res = await buildPackage(dir, {
        tag: opts.tag,
        store,
        cacheDir: p.cacheDir,
        progress: verbose ? (m) => io.stderr(`${m}\n`) : undefined,
      });
      if (opts.output === 'json')
        return out(json({ reference: res.stored.reference, digest: res.stored.digest, spec: res.spec }));
      if (opts.quiet) return out(`${res.stored.reference}\n`);
      out(`built ${res.stored.reference}\ndigest: ${res.stored.digest}\n`);
    });

  const registryOptions = (c: Command): Command =>
    c
      .option('--insecure', 'use plain HTTP (loopback registries always do)')
      .option(
        '--username <user>',
        'registry user name (or env KBPF_REGISTRY_AUTH=user:password; default: docker/podman auth files)',
      )
      .option('--password <password>', 'registry password');

  const registryClient = async (opts: { insecure?: boolean; username?: string; password?: string }) => {
    const { RegistryClient } = await import('../package/registry-client.js');
    let credentials: { username: string; password: string } | undefined;
    if (opts.username !== undefined || opts.password !== undefined) {
      if (opts.username === undefined || opts.password === undefined)
        throw new CliError('--username and --password go together');
      credentials = { username: opts.username, password: opts.password };
    } else if (io.env.KBPF_REGISTRY_AUTH) {
      const a = io.env.KBPF_REGISTRY_AUTH;
      const i = a.indexOf(':');
      if (i <= 0) throw new CliError('KBPF_REGISTRY_AUTH must be user:password');
      credentials = { username: a.slice(0, i), password: a.slice(i + 1) };
    }
    return new RegistryClient({
      ...(credentials ? { credentials } : {}),
      insecure: opts.insecure ?? false,
      userAgent: `kbpf/${KBPF_VERSION}`,
    });
  };

  registryOptions(
    cmd('push', 'push a package from the local store to an OCI registry')
      .argument('<image>', 'local package (name:version), or host[:port]/name:version')
      .argument('[registry-ref]', 'where to push: host[:port]/name[:tag] (default: IMAGE when it names a registry)'),
  ).action(
    async (
      image: string,
      dest: string | undefined,
      opts: { insecure?: boolean; username?: string; password?: string },
      c: Command,
    ) => {
      const store = new LayoutStore(paths(globals(c)).storeDir);
      const rc = await registryClient(opts);
      const r = await rc.push(store, image, dest, {
        onProgress: (e) => {
          if (e.done === e.total)
            io.stderr(
              `${e.skipped ? 'exists  ' : 'pushed  '} ${shortDigest(e.digest)} ${e.title ?? e.mediaType} (${size(e.total)})\n`,
            );
        },
      });
      out(`pushed ${r.reference}\ndigest: ${r.digest}\n`);
    },
  );

  registryOptions(
    cmd('pull', 'pull a package from an OCI registry into the local store')
      .argument('<ref>', 'host[:port]/name:tag or host[:port]/name@sha256:…')
      .option('--tag <name:version>', 'store it under this local name (default: REF as given)'),
  ).action(
    async (
      ref: string,
      opts: { insecure?: boolean; username?: string; password?: string; tag?: string },
      c: Command,
    ) => {
      const store = new LayoutStore(paths(globals(c)).storeDir);
      const rc = await registryClient(opts);
      const r = await rc.pull(ref, store, {
        ...(opts.tag ? { tag: opts.tag } : {}),
        onProgress: (e) => {
          if (e.done === e.total)
            io.stderr(
              `${e.skipped ? 'present ' : 'pulled  '} ${shortDigest(e.digest)} ${e.title ?? e.mediaType} (${size(e.total)})\n`,
            );
        },
      });
      out(`pulled ${r.localReference}\ndigest: ${r.digest}\n`);
    },
  );

  // ---- instances ----
  addAttachOptions(
    cmd('run', 'load and attach a package as a new instance')
      .argument('<image>', 'package: name:version, name@sha256:…')
      .option('--name <name>', 'instance name (default: package name and a random suffix)'),
  )
    .addOption(outputOption('text'))
    .addHelpText(
      'after',
      "\nConfig variables are the package's `const volatile` globals: see `kbpf inspect IMAGE`.\nExample: kbpf run --name snoop --set target_pid=42 opensnoop:1.0.0",
    )
    .action(
      async (
        image: string,
        opts: {
          name?: string;
          set?: [string, string][];
          cgroup?: string;
          iface?: string;
          attach?: [string, string][];
          output: OutputFormat;
        },
        c: Command,
      ) => {
        const req: { image: string; name?: string; config?: Record<string, string>; attach?: AttachOverrides } = {
          image,
        };
        if (opts.name) req.name = opts.name;
        const config = configOf(opts.set);
        if (config) req.config = config;
        const attach = attachOverrides(opts);
        if (attach) req.attach = attach;
        const st = await client(c).run(req);
        out(opts.output === 'json' ? json(st) : describeInstance(st));
      },
    );

  cmd('ps', 'list instances (those meant to run; -a for all)')
    .alias('list')
    .option('-a, --all', 'also stopped instances')
    .option('-q, --quiet', 'print only names')
    .addOption(outputOption())
    .action(async (opts: { all?: boolean; quiet?: boolean; output: OutputFormat }, c: Command) => {
      const list = (await client(c).list()).filter((s) => opts.all || s.desired === 'running' || s.phase !== 'stopped');
      if (opts.output === 'json') return out(json(list));
      if (opts.quiet) return out(list.map((s) => `${s.name}\n`).join(''));
      out(
        table(
          ['NAME', 'IMAGE', 'REV', 'STATUS', 'PROGRAMS', 'EVENTS', 'CREATED'],
          list.map((s) => [
            s.name,
            shortRef(s.image),
            String(s.revision),
            statusText(s),
            String(s.programs.length),
            `${s.events.received}${s.events.lost ? ` (${s.events.lost} lost)` : ''}`,
            ago(s.createdAt),
          ]),
        ),
      );
    });

  cmd('logs', "show an instance's events (decoded from BTF) from the agent's bounded log")
    .alias('log')
    .argument('<instance>')
    .option('-f, --follow', 'keep printing new events')
    .option('--since <duration|time>', 'only events since then: 30s, 5m, 1h30m, or 2024-05-01T10:00:00Z', (v: string) =>
      parseSinceArg(v),
    )
    .option('--tail <n>', 'only the last N events', nonNegativeInt('--tail'))
    .addOption(outputOption())
    .action(
      async (
        name: string,
        opts: { follow?: boolean; since?: string; tail?: number; output: OutputFormat },
        c: Command,
      ) => {
        const ac = new AbortController();
        const stop = (): void => ac.abort();
        io.signal?.addEventListener('abort', stop, { once: true });
        if (opts.follow && !io.signal) {
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        }
        const t = new LogTable(out);
        let batch: LogRecord[] = [];
        let flushTimer: NodeJS.Timeout | undefined;
        const flush = (): void => {
          clearTimeout(flushTimer);
          flushTimer = undefined;
          if (opts.output === 'json') out(batch.map((r) => `${JSON.stringify(r)}\n`).join(''));
          else t.add(batch);
          batch = [];
        };
        try {
          const q: { follow?: boolean; since?: string; tail?: number } = {};
          if (opts.follow) q.follow = true;
          if (opts.since) q.since = opts.since;
          if (opts.tail !== undefined) q.tail = opts.tail;
          for await (const r of client(c).logs(name, q, ac.signal)) {
            batch.push(r);
            // gather what arrives together, so the table's widths fit the first screenful
            if (batch.length >= 512) flush();
            else flushTimer ??= setTimeout(flush, 20);
          }
        } finally {
          flush();
          io.signal?.removeEventListener('abort', stop);
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      },
    );

  cmd('inspect', 'show an instance or a package as JSON')
    .alias('show')
    .argument('<name...>', 'instance name or package reference')
    .addOption(new Option('--type <kind>', 'look only for this kind').choices(['instance', 'image']))
    .action(async (names: string[], opts: { type?: 'instance' | 'image' }, c: Command) => {
      const api = client(c);
      const results: unknown[] = [];
      for (const n of names) {
        const looksLikeImage = /[:@/]/.test(n);
        if (opts.type !== 'image' && !(looksLikeImage && opts.type === undefined)) {
          try {
            results.push(await api.inspect(n));
            continue;
          } catch (e) {
            if (!(e instanceof ApiError && e.status === 404) || opts.type === 'instance') throw e;
          }
        }
        try {
          results.push(await api.inspectImage(n));
        } catch (e) {
          if (e instanceof ApiError && e.status === 404 && opts.type === undefined && !looksLikeImage) {
            throw new CliError(`no instance or package named "${n}" (see: kbpf ps -a, kbpf images)`);
          }
          throw e;
        }
      }
      out(json(results.length === 1 ? results[0] : results));
    });

  for (const [verb, what] of [
    ['stop', 'detach and unload instances (their config and history are kept)'],
    ['start', 'load and attach stopped instances again'],
  ] as const) {
    cmd(verb, what)
      .argument('<instance...>')
      .action(async (names: string[], _opts: unknown, c: Command) => {
        const api = client(c);
        await eachName(io, names, async (n) => {
          const st = verb === 'stop' ? await api.stop(n) : await api.start(n);
          out(`${st.name}: ${statusText(st)}\n`);
        });
      });
  }

  cmd('rm', 'remove instances: detach, unload, forget history and logs')
    .alias('delete')
    .argument('<instance...>')
    .option('-f, --force', 'also remove running instances')
    .action(async (names: string[], opts: { force?: boolean }, c: Command) => {
      const api = client(c);
      await eachName(io, names, async (n) => {
        await api.remove(n, { force: !!opts.force });
        out(`${n}\n`);
      });
    });

  cmd('clear', 'remove every instance (running ones included); needs --force')
    .option('-f, --force', 'really remove them all')
    .action(async (opts: { force?: boolean }, c: Command) => {
      const api = client(c);
      const all = await api.list();
      if (all.length === 0) {
        io.stderr('no instances\n');
        return;
      }
      if (!opts.force) {
        throw new CliError(
          `clear removes all ${all.length} instance(s) (${all.map((s) => s.name).join(', ')}), running ones included; to do it: kbpf clear --force`,
        );
      }
      await eachName(
        io,
        all.map((s) => s.name),
        async (n) => {
          await api.remove(n, { force: true });
          out(`${n}\n`);
        },
      );
    });

  addAttachOptions(
    cmd('upgrade', 'switch an instance to another package in place (a new revision)')
      .argument('<instance>')
      .argument('<image>'),
  )
    .addOption(outputOption('text'))
    .addHelpText(
      'after',
      '\nWithout --set the current config is kept (for the variables the new package still has); with --set, the given values replace it.\nWithout --cgroup/--iface/--attach the current attach targets are kept.',
    )
    .action(
      async (
        name: string,
        image: string,
        opts: {
          set?: [string, string][];
          cgroup?: string;
          iface?: string;
          attach?: [string, string][];
          output: OutputFormat;
        },
        c: Command,
      ) => {
        const req: { image: string; config?: Record<string, string>; attach?: AttachOverrides } = { image };
        const config = configOf(opts.set);
        if (config) req.config = config;
        const attach = attachOverrides(opts);
        if (attach) req.attach = attach;
        const st = await client(c).upgrade(name, req);
        out(opts.output === 'json' ? json(st) : describeInstance(st));
      },
    );

  cmd('rollback', 'return an instance to its previous revision (or --to-revision N), as a new revision')
    .argument('<instance>')
    .option('--to-revision <n>', 'the revision to return to', positiveInt('--to-revision'))
    .addOption(outputOption('text'))
    .action(async (name: string, opts: { toRevision?: number; output: OutputFormat }, c: Command) => {
      const st = await client(c).rollback(name, opts.toRevision !== undefined ? { toRevision: opts.toRevision } : {});
      out(opts.output === 'json' ? json(st) : describeInstance(st));
    });

  cmd('history', "list an instance's revisions")
    .argument('<instance>')
    .addOption(outputOption())
    .action(async (name: string, opts: { output: OutputFormat }, c: Command) => {
      const api = client(c);
      const [revs, st] = await Promise.all([api.history(name), api.inspect(name)]);
      if (opts.output === 'json') return out(json(revs));
      out(
        table(
          ['REVISION', 'IMAGE', 'DIGEST', 'CAUSE', 'CREATED', 'CONFIG'],
          revs.map((r) => [
            `${r.revision}${r.revision === st.revision ? ' *' : ''}`,
            shortRef(r.image),
            shortDigest(r.digest),
            r.cause,
            ago(r.createdAt),
            Object.entries(r.config ?? {})
              .map(([k, v]) => `${k}=${cell(v)}`)
              .join(' '),
          ]),
        ),
      );
    });

  cmd('maps', "show an instance's maps, decoded from BTF")
    .argument('<instance>')
    .argument('[map]', 'only this map')
    .addOption(outputOption())
    .action(async (name: string, map: string | undefined, opts: { output: OutputFormat }, c: Command) => {
      const maps = await client(c).maps(name, map);
      if (opts.output === 'json') return out(json(maps));
      const parts = maps.map((m) => {
        const head = `${m.name} (${m.type}, ${m.entries.length} entr${m.entries.length === 1 ? 'y' : 'ies'})\n`;
        if (m.entries.length === 0) return head;
        return (
          head +
          table(
            ['KEY', 'VALUE'],
            m.entries.map(([k, v]) => [cell(k), cell(v)]),
          ).replace(/^/gm, '  ')
        );
      });
      out(parts.join('\n'));
    });

  // ---- packages ----
  cmd('images', 'list the packages in the local store')
    .alias('packages')
    .option('-q, --quiet', 'print only references')
    .addOption(outputOption())
    .action(async (opts: { quiet?: boolean; output: OutputFormat }, c: Command) => {
      const list = await client(c).images();
      if (opts.output === 'json') return out(json(list));
      const rows: string[][] = [];
      for (const p of list) {
        const tags = p.tags.length ? p.tags : ['<none>'];
        for (const t of tags)
          rows.push([p.name, t, shortDigest(p.digest), p.version ?? '', size(p.size), ago(p.created)]);
      }
      if (opts.quiet)
        return out(
          list
            .flatMap((p) => (p.tags.length ? p.tags.map((t) => `${p.name}:${t}`) : [`${p.name}@${p.digest}`]))
            .map((r) => `${r}\n`)
            .join(''),
        );
      out(table(['NAME', 'TAG', 'DIGEST', 'VERSION', 'SIZE', 'CREATED'], rows));
    });

  cmd('rmi', 'remove packages from the local store (refused while an instance uses one, unless --force)')
    .argument('<image...>')
    .option('-f, --force', 'also remove the instances that use it')
    .action(async (images: string[], opts: { force?: boolean }, c: Command) => {
      const api = client(c);
      await eachName(io, images, async (ref) => {
        const r = await api.removeImage(ref, { force: !!opts.force });
        for (const i of r.instancesRemoved) out(`removed instance ${i}\n`);
        for (const x of r.removed) out(`removed ${x}\n`);
      });
    });

  // ---- the node ----
  cmd('doctor', 'show what this kernel supports (program and map types, hooks)')
    .addOption(outputOption())
    .action(async (opts: { output: OutputFormat }, c: Command) => {
      const f = await client(c).doctor();
      if (opts.output === 'json') return out(json(f));
      const yn = (b: boolean): string => (b ? 'yes' : 'no');
      out(
        `kernel: ${f.kernel}\nlibbpf: ${f.libbpf}\nBTF: ${yn(f.btf)}   JIT: ${yn(f.jit)}   unprivileged BPF: ${yn(f.unprivilegedBpf)}\n\n`,
      );
      out(
        table(
          ['HOOK', 'SUPPORTED', 'DETAIL'],
          Object.entries(f.hooks).map(([h, s]) => [h, s.supported, s.detail]),
        ),
      );
      const missing = (r: Record<string, string>): string => {
        const no = Object.entries(r)
          .filter(([, v]) => v !== 'yes')
          .map(([k, v]) => (v === 'no' ? k : `${k} (?)`));
        return no.length ? no.join(', ') : 'none';
      };
      out(
        `\nprogram types: ${Object.values(f.programTypes).filter((v) => v === 'yes').length} of ${Object.keys(f.programTypes).length}; missing: ${missing(f.programTypes)}\n`,
      );
      out(
        `map types: ${Object.values(f.mapTypes).filter((v) => v === 'yes').length} of ${Object.keys(f.mapTypes).length}; missing: ${missing(f.mapTypes)}\n`,
      );
    });

  cmd('version', 'print the versions of this CLI and of the agent')
    .addOption(outputOption('text'))
    .action(async (opts: { output: OutputFormat }, c: Command) => {
      let agent: { version: string; api: string } | { error: string };
      try {
        agent = await client(c).version();
      } catch (e) {
        agent = { error: (e as Error).message };
      }
      if (opts.output === 'json') return out(json({ client: { version: KBPF_VERSION, node: process.version }, agent }));
      out(`client: ${KBPF_VERSION} (node ${process.version})\n`);
      out(
        'error' in agent
          ? `agent: not reachable: ${agent.error}\n`
          : `agent: ${agent.version} (API ${agent.api}, ${globals(c).socket})\n`,
      );
    });

  return program;
}

/** Runs `fn` for every name; reports each failure and fails at the end if any did (like docker rm a b c). */
async function eachName(io: CliIo, names: string[], fn: (name: string) => Promise<void>): Promise<void> {
  let failed = 0;
  for (const n of names) {
    try {
      await fn(n);
    } catch (e) {
      // the agent is not there: no use trying the others
      if (e instanceof ApiError && e.status === 0) throw e;
      if (names.length === 1) throw e;
      reportError(io, e);
      failed++;
    }
  }
  if (failed) throw new CliError(`${failed} of ${names.length} failed`, 1);
}

/** Parses argv (without node and script) and runs the verb; resolves to the exit code. */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version are exit 0; usage errors were already printed by commander
      return e.exitCode;
    }
    reportError(io, e);
    return e instanceof CliError ? e.exitCode : 1;
  }
}

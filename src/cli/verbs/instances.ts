// Instances on the node, through the agent's API: run, ps, inspect, stop, start, rm, clear,
// upgrade, rollback, history, maps.
import { type Command, Option } from 'commander';
import { ApiError } from '../../agent/api-client.js';
import type { LogRecord } from '../../agent/log-store.js';
import type { RunRequest, UpgradeRequest } from '../../agent/types.js';
import { LayoutStore } from '../../package/layout-store.js';
import { parseReference, referenceName } from '../../package/reference.js';
import { loadPublicKey } from '../../package/trust/keys.js';
import { type Signer, storeSignatures, verifyPackage } from '../../package/trust/signing.js';
import type { CliContext } from '../context.js';
import { CliError, eachName } from '../errors.js';
import { addGuestOptions, type GuestRunOptions, isGuestFile, storeGuest } from '../guest-options.js';
import {
  type AttachOptions,
  addAttachOptions,
  attachOverrides,
  configOf,
  outputOption,
  positiveInt,
} from '../options.js';
import { renderInstanceHistory } from '../render/history.js';
import { renderInstance, renderInstanceNames, renderInstanceState, renderInstances } from '../render/instances.js';
import { renderRunOutput } from '../render/logs.js';
import { renderMaps } from '../render/maps.js';
import { data, isData, LIST_FORMATS, type ListFormat, TEXT_FORMATS, type TextFormat } from '../render/output.js';
import { cell } from '../render/values.js';
import { buildForRun, runTarget } from './run-source.js';

const DATA_FORMATS = ['json', 'yaml'] as const;

const collectKeys = (v: string, prev: string[] = []): string[] => [...prev, v];

/**
 * Who signed a package, read from the local store (the agent's API does not say): the number
 * of signatures kept beside it and the --key keys that made a valid one.
 */
async function packageSignatures(
  storeDir: string,
  image: { reference: string; digest: string },
  keyFiles: string[],
): Promise<{ found: number; signers: Signer[]; problems?: string[] } | { error: string }> {
  try {
    const keys = await Promise.all(keyFiles.map((k) => loadPublicKey(k)));
    const name = referenceName(parseReference(image.reference, { defaultTag: null }));
    const v = await verifyPackage(storeSignatures(new LayoutStore(storeDir), name), image.digest, keys);
    return { found: v.found, signers: v.signers, ...(v.problems.length ? { problems: v.problems } : {}) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export function addInstanceVerbs(program: Command, ctx: CliContext): void {
  addGuestOptions(
    addAttachOptions(
      program
        .command('run')
        .description(
          'load and attach a package as a new instance (a source directory or file is built first; a Wasm guest runs)',
        )
        .argument(
          '<image>',
          'package (name:version, name@sha256:…), a source directory, a FILE.bpf.c, or a Wasm guest FILE.wasm',
        )
        .argument(
          '[more...]',
          'with a FILE.bpf.c: its other sources and headers; with a guest: its arguments (after --)',
        )
        .option('--name <name>', 'instance name (default: package name and a random suffix)')
        .option('-t, --tag <name:version>', 'when building from source: the package to build (default: from kbpf.yaml)')
        .option('--rm', "print what the instance logged once attached (an iterator's output), then remove it")
        .option(
          '--engine <engine>',
          "kernel (default), or userspace: observe-only, in the foreground: xdp/tc/socket filter programs see a copy of --iface's packets in the user-space engine",
        )
        .option('--duration <seconds>', 'with --engine userspace: stop after this long (default: until Ctrl-C)'),
    ),
  )
    .addOption(outputOption(TEXT_FORMATS))
    .addHelpText(
      'after',
      [
        '',
        "Config variables are the package's `const volatile` globals: see `kbpf inspect IMAGE`.",
        'A source directory or FILE.bpf.c is built into the local store first, as `kbpf build` does.',
        'Programs run with the hooks this kernel has: of variants (fentry/kprobe, tp_btf/raw_tp/tracepoint)',
        'the best one runs; `kbpf inspect NAME` says which and why.',
        "A Wasm guest (wasm-bpf's host ABI) runs in its own process, within its capability manifest (by default",
        'what its embedded BPF objects declare; --allow-* add to it), memory limit and CPU budget; its stdout and',
        "stderr are the instance's log.",
        'Examples:',
        '  kbpf run --name snoop --set target_pid=42 opensnoop:1.0.0',
        '  kbpf run ./opensnoop',
        '  kbpf run opensnoop.bpf.c opensnoop.h',
        '  kbpf run --attach uprobe_add=uprobe:/usr/bin/bash:readline uprobe:0.0.0',
        '  kbpf run --attach profile=perf_event:cpu-clock:49 profile:0.0.0',
        '  kbpf run --map-size counts=10240 --share-map events=collector:events tool:1.0',
        '  kbpf run --rm task_iter:0.0.0',
        '  kbpf run --name boot bootstrap.wasm -- -d 100',
      ].join('\n'),
    )
    .action(
      async (
        given: string,
        more: string[],
        opts: AttachOptions &
          GuestRunOptions & {
            name?: string;
            tag?: string;
            rm?: boolean;
            engine?: string;
            duration?: string;
            output: TextFormat;
          },
        c: Command,
      ) => {
        if (opts.engine && opts.engine !== 'kernel' && opts.engine !== 'userspace')
          throw new CliError(`--engine ${opts.engine}: kernel or userspace`);
        let image: string;
        if (isGuestFile(given)) {
          if (opts.tag) throw new CliError('--tag is for building from source; a Wasm guest is stored as it is');
          image = await storeGuest(ctx.paths(c).storeDir, given, more, opts);
        } else {
          const t = runTarget(given, more);
          if (opts.tag && t.kind === 'image')
            throw new CliError('--tag is for building from source; IMAGE is a package');
          image = t.kind === 'image' ? t.image : await buildForRun(ctx, c, t, opts.tag, isData(opts.output));
        }
        if (opts.engine === 'userspace') {
          const { runObserved } = await import('./observe.js');
          const config = configOf(opts.set);
          return runObserved(
            ctx,
            image,
            {
              ...(opts.iface ? { iface: opts.iface } : {}),
              ...(config ? { config } : {}),
              ...(opts.duration ? { durationMs: Number(opts.duration) * 1000 } : {}),
              output: opts.output,
            },
            ctx.paths(c).storeDir,
          );
        }
        const req: RunRequest = { image };
        if (opts.name) req.name = opts.name;
        const config = configOf(opts.set);
        if (config) req.config = config;
        const attach = attachOverrides(opts);
        if (attach) req.attach = attach;
        const api = ctx.client(c);
        const st = await api.run(req);
        if (!opts.rm) return ctx.out(renderInstance(opts.output, st));
        // removed before anything is printed: a reader that stops early leaves nothing behind
        const records: LogRecord[] = [];
        try {
          for await (const r of api.logs(st.name)) records.push(r);
        } finally {
          await api.remove(st.name, { force: true });
        }
        ctx.out(renderRunOutput(records));
      },
    );

  program
    .command('ps')
    .alias('list')
    .description('list instances (those meant to run; -a for all)')
    .option('-a, --all', 'also stopped instances')
    .option('-q, --quiet', 'print only names')
    .addOption(outputOption(LIST_FORMATS))
    .action(async (opts: { all?: boolean; quiet?: boolean; output: ListFormat }, c: Command) => {
      const list = (await ctx.client(c).list()).filter(
        (s) => opts.all || s.desired === 'running' || s.phase !== 'stopped',
      );
      if (opts.quiet && !isData(opts.output)) return ctx.out(renderInstanceNames(list));
      ctx.out(renderInstances(opts.output, list));
    });

  program
    .command('inspect')
    .alias('show')
    .description('show an instance or a package as JSON')
    .argument('<name...>', 'instance name or package reference')
    .addOption(new Option('--type <kind>', 'look only for this kind').choices(['instance', 'image']))
    .option('--key <file>', "public key to check a package's signatures with (repeatable)", collectKeys)
    .addOption(outputOption(DATA_FORMATS))
    .addHelpText(
      'after',
      '\nA package shows its signatures from the local store: how many, and which of the --key keys made them.\nExample: kbpf inspect --key release.pub opensnoop:1.0.0',
    )
    .action(
      async (
        names: string[],
        opts: { type?: 'instance' | 'image'; key?: string[]; output: 'json' | 'yaml' },
        c: Command,
      ) => {
        const api = ctx.client(c);
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
            const image = await api.inspectPackage(n);
            results.push({
              ...image,
              signatures: await packageSignatures(ctx.paths(c).storeDir, image, opts.key ?? []),
            });
          } catch (e) {
            if (e instanceof ApiError && e.status === 404 && opts.type === undefined && !looksLikeImage) {
              throw new CliError(`no instance or package named "${n}" (see: kbpf ps -a, kbpf images)`);
            }
            throw e;
          }
        }
        ctx.out(data(opts.output, results.length === 1 ? results[0] : results));
      },
    );

  for (const [verb, what] of [
    ['stop', 'detach and unload instances (their config and history are kept)'],
    ['start', 'load and attach stopped instances again'],
  ] as const) {
    program
      .command(verb)
      .description(what)
      .argument('<instance...>')
      .action(async (names: string[], _opts: unknown, c: Command) => {
        const api = ctx.client(c);
        await eachName(ctx.io, names, async (n) => {
          ctx.out(renderInstanceState(verb === 'stop' ? await api.stop(n) : await api.start(n)));
        });
      });
  }

  program
    .command('rm')
    .alias('delete')
    .description('remove instances: detach, unload, forget history and logs')
    .argument('<instance...>')
    .option('-f, --force', 'also remove running instances, and instances whose maps others share (those keep the maps)')
    .action(async (names: string[], opts: { force?: boolean }, c: Command) => {
      const api = ctx.client(c);
      await eachName(ctx.io, names, async (n) => {
        await api.remove(n, { force: !!opts.force });
        ctx.out(`${cell(n)}\n`);
      });
    });

  program
    .command('clear')
    .description('remove every instance (running ones included); needs --force')
    .option('-f, --force', 'really remove them all')
    .action(async (opts: { force?: boolean }, c: Command) => {
      const api = ctx.client(c);
      const all = await api.list();
      if (all.length === 0) return ctx.note('no instances');
      if (!opts.force) {
        throw new CliError(
          `clear removes all ${all.length} instance(s) (${all.map((s) => s.name).join(', ')}), running ones included; to do it: kbpf clear --force`,
        );
      }
      await eachName(
        ctx.io,
        all.map((s) => s.name),
        async (n) => {
          await api.remove(n, { force: true });
          ctx.out(`${cell(n)}\n`);
        },
      );
    });

  addAttachOptions(
    program
      .command('upgrade')
      .description('switch an instance to another package in place (a new revision)')
      .argument('<instance>')
      .argument('<image>'),
  )
    .addOption(outputOption(TEXT_FORMATS))
    .addHelpText(
      'after',
      '\nWithout --set the current config is kept (for the variables the new package still has); with --set, the given values replace it.\nWithout --cgroup/--iface/--attach the current attach targets are kept.',
    )
    .action(async (name: string, image: string, opts: AttachOptions & { output: TextFormat }, c: Command) => {
      const req: UpgradeRequest = { image };
      const config = configOf(opts.set);
      if (config) req.config = config;
      const attach = attachOverrides(opts);
      if (attach) req.attach = attach;
      ctx.out(renderInstance(opts.output, await ctx.client(c).upgrade(name, req)));
    });

  program
    .command('rollback')
    .description('return an instance to its previous revision (or --to-revision N), as a new revision')
    .argument('<instance>')
    .option('--to-revision <n>', 'the revision to return to', positiveInt('--to-revision'))
    .addOption(outputOption(TEXT_FORMATS))
    .action(async (name: string, opts: { toRevision?: number; output: TextFormat }, c: Command) => {
      const st = await ctx
        .client(c)
        .rollback(name, opts.toRevision !== undefined ? { toRevision: opts.toRevision } : {});
      ctx.out(renderInstance(opts.output, st));
    });

  program
    .command('history')
    .description("list an instance's revisions")
    .argument('<instance>')
    .addOption(outputOption(LIST_FORMATS))
    .action(async (name: string, opts: { output: ListFormat }, c: Command) => {
      const api = ctx.client(c);
      const [revs, st] = await Promise.all([api.history(name), api.inspect(name)]);
      ctx.out(renderInstanceHistory(opts.output, revs, st.revision));
    });

  program
    .command('maps')
    .description("show an instance's maps, decoded from BTF")
    .argument('<instance>')
    .argument('[map]', 'only this map')
    .addOption(outputOption(LIST_FORMATS))
    .action(async (name: string, map: string | undefined, opts: { output: ListFormat }, c: Command) => {
      ctx.out(renderMaps(opts.output, await ctx.client(c).maps(name, map)));
    });
}

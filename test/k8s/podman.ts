// Running a manifest's container under podman with exactly what the manifest declares: its
// securityContext (pod and container level: user, capabilities, no privilege escalation, read-only
// root, seccomp), its volume mounts (hostPath volumes as bind mounts, read-only and propagation
// as declared; emptyDir as a fresh directory), its env (fieldRef values given by the caller),
// command and args ($(VAR) expanded as the kubelet does) and its memory limit. What a kubelet
// would add on its own — the service account's credentials — the caller mounts (`extraMounts`).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

interface SecurityContext {
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; mountPropagation?: string }[];
  resources?: { limits?: { memory?: string } };
  ports?: { containerPort: number; name?: string; protocol?: string }[];
}

export interface PodSpec {
  hostNetwork?: boolean;
  securityContext?: SecurityContext;
  containers: Container[];
  volumes?: { name: string; hostPath?: { path: string }; emptyDir?: object }[];
}

export interface RunOptions {
  name: string;
  image: string;
  /** fieldRef values: spec.nodeName, status.hostIP, metadata.namespace, metadata.name */
  fields: Record<string, string>;
  /** host paths of hostPath volumes, by volume name (a test's own directories instead of /var/lib/kbpf…) */
  hostPaths?: Record<string, string>;
  /** edits of the expanded args (a test's own bpffs dir or log address) */
  args?: (args: string[]) => string[];
  /** HOST:CONTAINER[:ro] mounts a kubelet would add (the service account's credentials) */
  extraMounts?: string[];
  /** the network namespace: the pod's declaration (hostNetwork) unless given */
  network?: 'host';
  /** where emptyDir volumes are made (a directory the test removes) */
  scratchDir: string;
}

/** The rlimits podman must be given here (its defaults fail on these machines). */
const ULIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=4096:4096'];

/** `podman --runtime runc run -d …` arguments for the pod's first container. */
export function podmanRunArgs(pod: PodSpec, o: RunOptions): string[] {
  const c = pod.containers[0]!;
  const sc: SecurityContext = { ...pod.securityContext, ...c.securityContext };
  const out = ['--runtime', 'runc', 'run', '-d', '--name', o.name, ...ULIMITS];
  out.push('--network', pod.hostNetwork || o.network === 'host' ? 'host' : 'none');
  if (sc.privileged) out.push('--privileged');
  if (sc.runAsUser !== undefined)
    out.push('--user', `${sc.runAsUser}${sc.runAsGroup !== undefined ? `:${sc.runAsGroup}` : ''}`);
  if (sc.runAsNonRoot && sc.runAsUser === 0) throw new Error(`${c.name}: runAsNonRoot with runAsUser 0`);
  if (sc.allowPrivilegeEscalation === false) out.push('--security-opt', 'no-new-privileges');
  // a read-only root and nothing else writable: podman's own tmpfs mounts (/tmp, /run…) are off
  if (sc.readOnlyRootFilesystem) out.push('--read-only', '--read-only-tmpfs=false');
  for (const cap of sc.capabilities?.drop ?? []) out.push('--cap-drop', cap);
  for (const cap of sc.capabilities?.add ?? []) out.push('--cap-add', `CAP_${cap}`);
  if (sc.seccompProfile?.type === 'Unconfined') out.push('--security-opt', 'seccomp=unconfined');
  const memory = c.resources?.limits?.memory;
  if (memory) out.push('--memory', memory.replace(/Mi$/, 'm').replace(/Gi$/, 'g'));
  for (const m of c.volumeMounts ?? []) {
    const v = pod.volumes?.find((x) => x.name === m.name);
    if (!v) throw new Error(`${c.name}: mount ${m.name} has no volume`);
    const host = v.hostPath
      ? (o.hostPaths?.[m.name] ?? v.hostPath.path)
      : mkdtempSync(join(o.scratchDir, `${m.name}-`));
    if (!v.hostPath && !v.emptyDir) throw new Error(`${c.name}: volume ${m.name} is neither hostPath nor emptyDir`);
    const opts = [m.readOnly ? 'ro' : 'rw'];
    if (m.mountPropagation === 'HostToContainer') opts.push('rslave');
    if (m.mountPropagation === 'Bidirectional') opts.push('rshared');
    out.push('-v', `${host}:${m.mountPath}:${opts.join(',')}`);
  }
  for (const m of o.extraMounts ?? []) out.push('-v', m);
  const env: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const value = field !== undefined ? o.fields[field] : e.value;
    if (value === undefined) throw new Error(`${c.name}: no value for env ${e.name}`);
    env[e.name] = value;
  }
  for (const [k, v] of Object.entries(env)) out.push('--env', `${k}=${v}`);
  const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, k: string) => env[k] ?? m);
  const command = (c.command ?? []).map(expand);
  const args = (o.args ?? ((a: string[]) => a))((c.args ?? []).map(expand));
  if (command.length) out.push('--entrypoint', JSON.stringify(command));
  out.push(o.image, ...args);
  return out;
}

export function podman(args: string[], timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('podman', args, { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err
        ? typeof (err as { code?: unknown }).code === 'number'
          ? (err as { code: number }).code
          : 1
        : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Why podman cannot run a container here (undefined when it can): the reason a test skips with. */
export function podmanUnavailable(image: string): string | undefined {
  const probe = spawnSync('podman', ['--version'], { encoding: 'utf8' });
  if (probe.error) return 'needs podman (Debian package podman) and runc';
  const r = spawnSync(
    'podman',
    ['--runtime', 'runc', 'run', '--rm', '--network', 'none', ...ULIMITS, '--entrypoint', 'node', image, '--version'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  if (r.status === 0 && /^v20\./.test(r.stdout)) return undefined;
  return `podman cannot run a container here: ${(r.stderr || r.stdout || String(r.error)).trim().split('\n').at(-1)}`;
}

/** containers.conf for `podman kube play`, which takes no --runtime or --ulimit: runc and the rlimits above. */
export const KUBE_PLAY_CONF = [
  '[containers]',
  `default_ulimits = [${ULIMITS.filter((_, i) => i % 2 === 1)
    .map((u) => JSON.stringify(u))
    .join(', ')}]`,
  '[engine]',
  'runtime = "runc"',
  '',
].join('\n');

export interface KubePlayOptions extends Pick<RunOptions, 'fields' | 'hostPaths' | 'args'> {
  /** the kubeconfig a kubelet's service account volume stands for: host file, path in the pod */
  kubeconfig: { host: string; inPod: string };
}

/**
 * A pod spec as a kubelet would hand it to the runtime, for `podman kube play`: fieldRef env
 * values filled in (podman 4.3 resolves only metadata.name), the test's host paths, the args
 * edited, the kubeconfig mounted, no port declarations on the host network, and the seccomp
 * profile also as the annotation podman reads. Nothing of the securityContext changes.
 */
export function forKubePlay(pod: PodSpec, o: KubePlayOptions): { spec: PodSpec; annotations: Record<string, string> } {
  const p = structuredClone(pod);
  const c = p.containers[0]!;
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (field === undefined || field === 'metadata.name') continue;
    e.value = o.fields[field];
    delete e.valueFrom;
  }
  for (const v of p.volumes ?? []) if (v.hostPath && o.hostPaths?.[v.name]) v.hostPath.path = o.hostPaths[v.name]!;
  c.args = [...(o.args ?? ((a: string[]) => a))(c.args ?? [])];
  // with hostNetwork a containerPort maps nothing (Kubernetes only records it); podman 4.3 refuses
  // port mappings on the host network, so they go
  if (p.hostNetwork) delete c.ports;
  c.volumeMounts = [...(c.volumeMounts ?? []), { name: 'kubeconfig', mountPath: o.kubeconfig.inPod, readOnly: true }];
  p.volumes = [...(p.volumes ?? []), { name: 'kubeconfig', hostPath: { path: o.kubeconfig.host } }];
  // podman 4.3 reads the seccomp profile from the annotation Kubernetes had before the field
  // (and ignores securityContext.seccompProfile): the same declaration, spelt the old way
  const seccomp = c.securityContext?.seccompProfile?.type ?? p.securityContext?.seccompProfile?.type;
  const annotations: Record<string, string> = {};
  if (seccomp === 'Unconfined') annotations[`container.seccomp.security.alpha.kubernetes.io/${c.name}`] = 'unconfined';
  if (seccomp === 'RuntimeDefault')
    annotations[`container.seccomp.security.alpha.kubernetes.io/${c.name}`] = 'runtime/default';
  return { spec: p, annotations };
}

/** Where podman (cgroupfs manager, as here) makes a cgroup per container and pod. */
export const PODMAN_CGROUP_PARENT = '/sys/fs/cgroup/unified/libpod_parent';

/** The cgroup directories under podman's parent now (the parent itself included when it exists). */
export function podmanCgroups(): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string): void => {
    out.add(dir);
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) walk(join(dir, e.name));
  };
  if (existsSync(PODMAN_CGROUP_PARENT)) walk(PODMAN_CGROUP_PARENT);
  return out;
}

/**
 * Removes the cgroups podman made since `before` and left behind when its containers went (runc
 * under the cgroupfs manager does not remove them), deepest first; a cgroup that still holds a
 * process stays (rmdir refuses it) and is returned.
 */
export function removePodmanCgroups(before: Set<string>): string[] {
  const made = [...podmanCgroups()].filter((d) => !before.has(d)).sort((a, b) => b.length - a.length);
  const left: string[] = [];
  for (const d of made) {
    try {
      if (statSync(d).isDirectory()) rmdirSync(d);
    } catch {
      left.push(d);
    }
  }
  return left;
}

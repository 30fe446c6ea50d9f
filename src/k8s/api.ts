// The kbpf.io/v1alpha1 API: BpfDeployment (which package runs on which nodes), BpfNodeInstance
// (one deployment on one node: spec from the controller, status from that node's agent) and
// BpfRevision (an immutable snapshot of a deployment's template, like a ControllerRevision),
// BpfPackage (a package stored in the cluster itself: its OCI manifest and blobs, see
// cluster-packages.ts) and BpfNode (what one node's kernel supports, from its agent).
// The schemas with validation live in deploy/crds/.
import { createHash } from 'node:crypto';

export const GROUP = 'kbpf.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
export const PLURAL = {
  deployments: 'bpfdeployments',
  nodeInstances: 'bpfnodeinstances',
  revisions: 'bpfrevisions',
  packages: 'bpfpackages',
  nodes: 'bpfnodes',
} as const;

/** labels the controller puts on what it owns */
export const LABEL_DEPLOYMENT = 'kbpf.io/deployment';
export const LABEL_NODE = 'kbpf.io/node';
/** a BpfPackage's package name (its objects are one per digest) */
export const LABEL_PACKAGE = 'kbpf.io/package';
/** the agent removes this from a BpfNodeInstance once the node has nothing of it left */
export const FINALIZER_NODE_CLEANUP = 'kbpf.io/node-cleanup';
export const DEFAULT_NAMESPACE = 'kbpf-system';
export const LEASE_NAME = 'kbpf-controller';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }[];
}

export interface Attach {
  cgroup?: string;
  iface?: string;
  programs?: Record<string, string>;
  /** maps sized for this deployment: MAP -> max_entries (kbpf run --map-size) */
  mapSizes?: Record<string, number>;
  /** maps used from another deployment's instance on the same node: MAP -> INSTANCE[:MAP] */
  shareMaps?: Record<string, string>;
}

export type ConfigValues = Record<string, string | number>;

/** What makes a revision: changing any of it starts a rollout. */
export interface Template {
  package: { image: string; pullSecret?: string };
  config?: ConfigValues;
  attach?: Attach;
}

export interface BpfDeploymentSpec extends Template {
  /** every node unloads the programs but keeps the instance (kubectl bpf stop); false: they run */
  stopped?: boolean;
  nodeSelector?: LabelSelector;
  nodeNames?: string[];
  strategy?: { type?: 'RollingUpdate' | 'OnDelete'; rollingUpdate?: { maxUnavailable?: number | string } };
  revisionHistoryLimit?: number;
  paused?: boolean;
}

/**
 * Untrusted: the package is not signed by a key the cluster's trust policy names (no node runs it).
 * PullSecretRefused: the pull secret it names is not a labelled pull secret, or does not allow it.
 */
export type ConditionType = 'Available' | 'Progressing' | 'Degraded' | 'Untrusted' | 'PullSecretRefused';
export interface Condition {
  type: ConditionType;
  status: 'True' | 'False' | 'Unknown';
  reason?: string;
  message?: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface BpfDeploymentStatus {
  observedGeneration?: number;
  currentRevision?: number;
  updateRevision?: number;
  packageDigest?: string;
  desiredNodes?: number;
  readyNodes?: number;
  updatedNodes?: number;
  failedNodes?: number;
  conditions?: Condition[];
}

export interface BpfDeployment {
  apiVersion: typeof API_VERSION;
  kind: 'BpfDeployment';
  metadata: ObjectMeta;
  spec: BpfDeploymentSpec;
  status?: BpfDeploymentStatus;
}

export type NodePhase = 'Pending' | 'Loading' | 'Running' | 'Stopped' | 'Failed' | 'Deleting';

export interface BpfNodeInstanceSpec {
  deployment: string;
  nodeName: string;
  revision: number;
  /** registry reference by digest: host/repo@sha256:… */
  image: string;
  digest: string;
  pullSecret?: string;
  config?: ConfigValues;
  attach?: Attach;
  /** the deployment is stopped: the node keeps the instance with its programs unloaded */
  stopped?: boolean;
}

export interface BpfNodeInstanceStatus {
  phase?: NodePhase;
  observedGeneration?: number;
  revision?: number;
  digest?: string;
  message?: string;
  programs?: { name: string; type?: string; attach?: string; progId?: number; linkId?: number }[];
  mapIds?: number[];
  updatedAt?: string;
}

/**
 * A node agent's log endpoint, as its BpfNode's status advertises it (docs/kubernetes.md, "Logs").
 * Written by the node, so a client believes the URL only on one of the Node's addresses and
 * talks TLS only to the holder of this certificate.
 */
export interface NodeLogsEndpoint {
  /** base URL, e.g. https://10.0.0.7:10260 ; the log of deployment D is at {url}/v1/logs/D */
  url: string;
  /** the endpoint's self-signed certificate (PEM), which clients pin */
  certificate: string;
}

/**
 * The audience of the tokens a node's log endpoint accepts: one per node, so a token sent to one
 * node is worth nothing on any other node, nor on the API server.
 */
export function logsAudience(node: string): string {
  return `kbpf.io/node-logs/${node}`;
}

/** The service account whose tokens (audience: one node) the log endpoints accept by default. */
export const LOGS_READER_ACCOUNT = 'kbpf-logs-reader';

export interface BpfNodeInstance {
  apiVersion: typeof API_VERSION;
  kind: 'BpfNodeInstance';
  metadata: ObjectMeta;
  spec: BpfNodeInstanceSpec;
  status?: BpfNodeInstanceStatus;
}

export interface BpfRevision {
  apiVersion: typeof API_VERSION;
  kind: 'BpfRevision';
  metadata: ObjectMeta;
  deployment: string;
  revision: number;
  digest: string;
  templateHash: string;
  template: Template;
}

/** One blob of a BpfPackage: its descriptor and its bytes, base64. */
export interface PackageBlob {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  data: string;
}

export interface BpfPackageSpec {
  /** the package's name and version (kbpf.yaml's), as `bpfpackage://NAME:VERSION` names it */
  name: string;
  version: string;
  /** the manifest's digest: what nodes pull by */
  digest: string;
  /** the OCI image manifest, its exact bytes, base64 */
  manifest: string;
  /** the config blob and every layer the manifest names */
  blobs: PackageBlob[];
  /** the package's signatures (cosign's key-based format: one layer per signature) */
  signatures?: PackageBlob[];
  /** bytes of the manifest, blobs and signatures (before base64) */
  size: number;
}

export interface BpfPackage {
  apiVersion: typeof API_VERSION;
  kind: 'BpfPackage';
  metadata: ObjectMeta;
  spec: BpfPackageSpec;
}

/** What a node's kernel supports, as its agent probed it (kbpf doctor's answer). */
export interface BpfNodeStatus {
  kernel?: string;
  libbpf?: string;
  btf?: boolean;
  jit?: boolean;
  hooks?: Record<string, { supported: string; detail?: string }>;
  programTypes?: Record<string, string>;
  mapTypes?: Record<string, string>;
  agentVersion?: string;
  probedAt?: string;
  /** where the node's agent serves event logs, and the certificate to expect there */
  logs?: NodeLogsEndpoint;
}

export interface BpfNode {
  apiVersion: typeof API_VERSION;
  kind: 'BpfNode';
  metadata: ObjectMeta;
  status?: BpfNodeStatus;
}

export interface NodeLike {
  metadata: ObjectMeta;
}

/** JSON with object keys sorted, so equal values serialise equally. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

export function templateOf(spec: BpfDeploymentSpec): Template {
  const t: Template = { package: { image: spec.package.image } };
  if (spec.package.pullSecret) t.package.pullSecret = spec.package.pullSecret;
  if (spec.config && Object.keys(spec.config).length) t.config = spec.config;
  if (spec.attach && Object.keys(spec.attach).length) t.attach = spec.attach;
  return t;
}

export function templateHash(t: Template): string {
  return createHash('sha256').update(canonicalJson(t)).digest('hex').slice(0, 10);
}

export function nodeInstanceName(deployment: string, node: string): string {
  const base = `${deployment}.${node}`;
  if (base.length <= 253) return base;
  return `${deployment}.${createHash('sha256').update(node).digest('hex').slice(0, 16)}`;
}

/** Does a label set match a selector (matchLabels and matchExpressions, as Kubernetes does)? */
export function selectorMatches(sel: LabelSelector, labels: Record<string, string> = {}): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    switch (e.operator) {
      case 'In':
        if (!has || !(e.values ?? []).includes(labels[e.key]!)) return false;
        break;
      case 'NotIn':
        if (has && (e.values ?? []).includes(labels[e.key]!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** A label selector as the `labelSelector` query parameter spells it. */
export function selectorString(sel: LabelSelector): string {
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator === 'In' ? 'in' : 'notin'} (${(e.values ?? []).join(',')})`);
  }
  return parts.join(',');
}

/** maxUnavailable as a node count (a percentage rounds down, but at least 1). */
export function maxUnavailableOf(spec: Pick<BpfDeploymentSpec, 'strategy'>, desired: number): number {
  const v = spec.strategy?.rollingUpdate?.maxUnavailable ?? 1;
  if (typeof v === 'number') return Math.max(1, v);
  const m = /^(\d+)%$/.exec(v);
  if (m) return Math.max(1, Math.floor((desired * Number(m[1])) / 100));
  const n = Number(v);
  return Number.isFinite(n) && n >= 1 ? Math.floor(n) : 1;
}

/** Is this instance running what its spec asks for? */
export function instanceReady(ni: BpfNodeInstance): boolean {
  return (
    (ni.status?.phase === 'Running' || (ni.spec.stopped === true && ni.status?.phase === 'Stopped')) &&
    ni.status.observedGeneration === ni.metadata.generation &&
    ni.status.revision === ni.spec.revision &&
    !ni.metadata.deletionTimestamp
  );
}

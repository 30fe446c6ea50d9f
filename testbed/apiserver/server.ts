// A test Kubernetes API server: only the API semantics kbpf relies on, over plain HTTP, so that
// the real @kubernetes/client-node (and kubectl) can talk to it through a kubeconfig:
// - discovery (/api, /apis, /api/v1, /apis/GROUP/VERSION) for the built-in kinds used (Node,
//   Namespace, Pod, Secret, Lease, CustomResourceDefinition) and every kind a CRD defines;
// - CRDs: creating one serves its kind; objects are validated against its OpenAPI v3 schema
//   (defaults, pruning of unknown fields, x-kubernetes-validations), with a status subresource
//   and selectableFields when the CRD declares them;
// - create / get / list / update (409 Conflict on a stale resourceVersion) / merge-patch /
//   delete (finalizers, deletionTimestamp), generation bumped on spec changes;
// - list and watch with resourceVersion, label and field selectors, bookmarks, timeoutSeconds,
//   and 410 Gone for a resourceVersion older than the retained event window (see compact());
// - owner references with background garbage collection of dependents;
// - what Debian's real kubectl needs: OpenAPI v3 documents (openapi.ts: /openapi/v3, one per
//   group-version, from the CRD schemas and the built-in kinds), fieldValidation=Strict (an
//   unknown field is an error), strategic merge patches (as merge patches), and the Table format
//   for get/list/watch (table.ts: the CRDs' additionalPrinterColumns).

import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { compileExpression } from './cel.js';
import { ObjectIndex } from './objects.js';
import { openApiDocuments, openApiIndex } from './openapi.js';
import { compileSchemaRules, type Problems, type Schema, validate } from './schema.js';
import { type PrinterColumn, toTable, wantsTable } from './table.js';
import { ServiceAccountTokens, TokenRequestError } from './tokens.js';

type Obj = Record<string, unknown> & { apiVersion?: string; kind?: string; metadata: Meta };
interface Meta {
  name: string;
  namespace?: string;
  generateName?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string }[];
  [k: string]: unknown;
}

interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  schema?: Schema;
  status: boolean;
  /** field selector names besides metadata.name / metadata.namespace */
  selectable: string[];
  /** a CRD version's additionalPrinterColumns (the Table format's columns) */
  printerColumns?: PrinterColumn[];
}

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  rt: ResourceType;
  obj: Obj;
  old?: Obj;
}

interface Watcher {
  rt: ResourceType;
  namespace?: string;
  match: (o: Obj) => boolean;
  send: (type: string, obj: unknown) => void;
  close: () => void;
}

class HttpError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

const BUILTIN: ResourceType[] = [
  {
    group: '',
    version: 'v1',
    plural: 'nodes',
    singular: 'node',
    kind: 'Node',
    namespaced: false,
    shortNames: ['no'],
    status: true,
    selectable: ['spec.unschedulable'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    status: true,
    selectable: ['status.phase'],
  },
  // pods: status subresource (kubelet reports status.podIP(s) / phase there); spec.nodeName and
  // status.phase selectable as on a real server (a node's agent lists spec.nodeName=<node>)
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    singular: 'pod',
    kind: 'Pod',
    namespaced: true,
    shortNames: ['po'],
    categories: ['all'],
    status: true,
    selectable: ['spec.nodeName', 'status.phase'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    namespaced: true,
    status: false,
    selectable: ['type'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'configmaps',
    singular: 'configmap',
    kind: 'ConfigMap',
    namespaced: true,
    shortNames: ['cm'],
    status: false,
    selectable: [],
  },
  {
    group: '',
    version: 'v1',
    plural: 'serviceaccounts',
    singular: 'serviceaccount',
    kind: 'ServiceAccount',
    namespaced: true,
    shortNames: ['sa'],
    status: false,
    selectable: [],
  },
  // what deploy/ installs besides its CRDs (stored, not run: no kubelet or scheduler here)
  ...(['DaemonSet', 'Deployment'] as const).map((kind) => ({
    group: 'apps',
    version: 'v1',
    plural: `${kind.toLowerCase()}s`,
    singular: kind.toLowerCase(),
    kind,
    namespaced: true,
    shortNames: [kind === 'DaemonSet' ? 'ds' : 'deploy'],
    categories: ['all'],
    status: true,
    selectable: [],
  })),
  ...(['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding'] as const).map((kind) => ({
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    plural: `${kind.toLowerCase()}s`,
    singular: kind.toLowerCase(),
    kind,
    namespaced: !kind.startsWith('Cluster'),
    status: false,
    selectable: [],
  })),
  {
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    singular: 'lease',
    kind: 'Lease',
    namespaced: true,
    status: false,
    selectable: [],
  },
  // service-lb and netpol read these: Services (spec.clusterIP / ports / type), EndpointSlices
  // (labelled kubernetes.io/service-name, as the real server's controller writes them) and
  // NetworkPolicies (Kubernetes' semantics are the netpol package's, not the server's)
  {
    group: '',
    version: 'v1',
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    namespaced: true,
    shortNames: ['svc'],
    categories: ['all'],
    status: true,
    selectable: ['spec.clusterIP', 'spec.type'],
  },
  {
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    singular: 'endpointslice',
    kind: 'EndpointSlice',
    namespaced: true,
    status: false,
    selectable: ['addressType'],
  },
  {
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'networkpolicies',
    singular: 'networkpolicy',
    kind: 'NetworkPolicy',
    namespaced: true,
    shortNames: ['netpol'],
    status: false,
    selectable: [],
  },
  // admission: policies and their bindings are evaluated on every create and update (admit())
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    plural: 'validatingadmissionpolicies',
    singular: 'validatingadmissionpolicy',
    kind: 'ValidatingAdmissionPolicy',
    namespaced: false,
    status: true,
    selectable: [],
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    plural: 'validatingadmissionpolicybindings',
    singular: 'validatingadmissionpolicybinding',
    kind: 'ValidatingAdmissionPolicyBinding',
    namespaced: false,
    status: false,
    selectable: [],
  },
  {
    group: 'apiextensions.k8s.io',
    version: 'v1',
    plural: 'customresourcedefinitions',
    singular: 'customresourcedefinition',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    shortNames: ['crd', 'crds'],
    status: true,
    selectable: [],
  },
];

function gv(rt: { group: string; version: string }): string {
  return rt.group ? `${rt.group}/${rt.version}` : rt.version;
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** Label selector (the query-string form): =, ==, !=, in, notin, exists, !exists. */
export function parseLabelSelector(s: string): (labels: Record<string, string>) => boolean {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of s) {
    if (c === '(') depth++;
    if (c === ')') depth--;
    if (c === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += c;
  }
  if (cur.trim()) parts.push(cur);
  const tests = parts.map((raw) => {
    const p = raw.trim();
    let m = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(p);
    if (m) {
      const [, key, op, vals] = m;
      const set = vals!
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean);
      return (l: Record<string, string>) =>
        op === 'in' ? key! in l && set.includes(l[key!]!) : !(key! in l) || !set.includes(l[key!]!);
    }
    m = /^([^\s!=]+)\s*!=\s*(\S*)$/.exec(p);
    if (m) {
      const [, key, val] = m;
      return (l: Record<string, string>) => l[key!] !== val;
    }
    m = /^([^\s!=]+)\s*==?\s*(\S*)$/.exec(p);
    if (m) {
      const [, key, val] = m;
      return (l: Record<string, string>) => l[key!] === val;
    }
    m = /^!\s*([^\s!=]+)$/.exec(p);
    if (m) {
      const key = m[1]!;
      return (l: Record<string, string>) => !(key in l);
    }
    if (/^[^\s!=(),]+$/.test(p)) return (l: Record<string, string>) => p in l;
    throw new HttpError(400, 'BadRequest', `unable to parse requirement: ${JSON.stringify(p)}`);
  });
  return (labels) => tests.every((t) => t(labels));
}

function fieldValue(o: Obj, path: string): string | undefined {
  let v: unknown = o;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v === undefined || v === null ? undefined : String(v);
}

export interface TestApiServerOptions {
  /** how many events watches can resume from (older resourceVersions get 410 Gone) */
  eventWindow?: number;
  bookmarkIntervalMs?: number;
  /** address to listen on (default 127.0.0.1) */
  host?: string;
}

/** Who a request is, as admission policies see it (`request.userInfo`). */
export interface UserInfo {
  username: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** A bearer token no identity was given for: the cluster admin (as every client was before identities). */
const ADMIN: UserInfo = { username: 'admin', groups: ['system:masters'], extra: {} };

export class TestApiServer {
  readonly types = new Map<string, ResourceType>(); // key gv/plural
  readonly objects = new ObjectIndex<Obj>(); // key gv/plural/ns/name
  readonly events: Event[] = [];
  readonly watchers = new Set<Watcher>();
  /** warnings sent to clients (unknown fields pruned), for tests to assert on */
  readonly warnings: string[] = [];
  /** every request: method, path, status, whether it was a watch, and who asked (its bearer token) */
  readonly requests: { method: string; path: string; code: number; watch: boolean; user: string }[] = [];
  /** TokenRequest and TokenReview (tokens.ts) */
  readonly tokens = new ServiceAccountTokens(
    (ns, name) => this.objects.get(`v1/serviceaccounts/${ns}/${name}`)?.metadata.uid,
  );
  #rv = 100;
  /** resourceVersions at or below this are gone */
  #compactedRv = 100;
  #server?: Server;
  url = '';
  /** identities by bearer token (addUser); any other token is ADMIN */
  readonly users = new Map<string, UserInfo>();
  /** the identity of the request being handled */
  readonly #requestUser = new AsyncLocalStorage<UserInfo>();

  constructor(readonly opts: TestApiServerOptions = {}) {
    for (const rt of BUILTIN) this.types.set(`${gv(rt)}/${rt.plural}`, rt);
  }

  async start(): Promise<string> {
    this.#server = createServer((req, res) => {
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
      this.#requestUser.run(this.users.get(token) ?? ADMIN, () =>
        this.handle(req, res).catch((e) => this.fail(res, e)),
      );
    });
    this.#server.keepAliveTimeout = 1000;
    const host = this.opts.host ?? '127.0.0.1';
    await new Promise<void>((r) => this.#server!.listen(0, host, r));
    this.url = `http://${host}:${(this.#server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.close();
    this.#server?.closeAllConnections();
    await new Promise<void>((r) => (this.#server ? this.#server.close(() => r()) : r()));
  }

  /**
   * Requests with bearer `token` are `user` in admission (request.userInfo), e.g. a node agent's
   * service account with its bound token's node claim (extra authentication.kubernetes.io/node-name).
   */
  addUser(token: string, user: UserInfo): void {
    this.users.set(token, { groups: [], extra: {}, ...user });
  }

  /** Writes a kubeconfig that points at this server (as bearer `token`: see addUser). */
  writeKubeconfig(path: string, user = 'test-admin', token = 'test-token'): string {
    writeFileSync(
      path,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: test',
        '  cluster:',
        `    server: ${this.url}`,
        '    insecure-skip-tls-verify: true',
        'users:',
        `- name: ${user}`,
        '  user:',
        `    token: ${token}`,
        'contexts:',
        '- name: test',
        '  context:',
        '    cluster: test',
        `    user: ${user}`,
        'current-context: test',
        '',
      ].join('\n'),
    );
    return path;
  }

  /** Forgets every event so far: watches resuming from any resourceVersion handed out so far get 410 Gone. */
  compact(): void {
    this.#compactedRv = ++this.#rv;
    this.events.length = 0;
  }

  /** Ends every open watch (as an API server restart or a load balancer would). */
  dropWatches(): void {
    for (const w of [...this.watchers]) w.close();
  }

  get resourceVersion(): number {
    return this.#rv;
  }

  // ---- storage ----

  private key(rt: ResourceType, ns: string | undefined, name: string): string {
    return `${gv(rt)}/${rt.plural}/${ns ?? ''}/${name}`;
  }

  private all(rt: ResourceType, ns?: string): Obj[] {
    const out: Obj[] = [];
    for (const o of this.objects.ofType(`${gv(rt)}/${rt.plural}/`))
      if (ns === undefined || o.metadata.namespace === ns) out.push(o);
    return out;
  }

  private emit(type: Event['type'], rt: ResourceType, obj: Obj, old?: Obj): void {
    const ev: Event = {
      rv: Number(obj.metadata.resourceVersion),
      type,
      rt,
      obj: structuredClone(obj),
      old: old && structuredClone(old),
    };
    this.events.push(ev);
    const max = this.opts.eventWindow ?? 5000;
    if (this.events.length > max) {
      const dropped = this.events.splice(0, this.events.length - max);
      this.#compactedRv = dropped.at(-1)!.rv;
    }
    for (const w of this.watchers) this.deliver(w, ev);
  }

  private deliver(w: Watcher, ev: Event): void {
    if (w.rt !== ev.rt) return;
    if (w.namespace !== undefined && ev.obj.metadata.namespace !== w.namespace) return;
    const now = w.match(ev.obj);
    const before = ev.old ? w.match(ev.old) : false;
    if (ev.type === 'MODIFIED') {
      if (now && before) w.send('MODIFIED', ev.obj);
      else if (now) w.send('ADDED', ev.obj);
      else if (before) w.send('DELETED', ev.obj);
    } else if (now) w.send(ev.type, ev.obj);
  }

  private nextRv(): string {
    return String(++this.#rv);
  }

  // ---- HTTP ----

  private fail(res: ServerResponse, e: unknown): void {
    const he = e instanceof HttpError ? e : new HttpError(500, 'InternalError', (e as Error).stack ?? String(e));
    if (res.headersSent) {
      res.end();
      return;
    }
    this.json(res, he.code, {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: he.message,
      reason: he.reason,
      code: he.code,
      ...(he.details ? { details: he.details } : {}),
    });
  }

  private json(res: ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  private async body(req: IncomingMessage): Promise<Obj> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text) return {} as Obj;
    try {
      return JSON.parse(text) as Obj;
    } catch {
      throw new HttpError(400, 'BadRequest', 'the request body is not JSON');
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const user = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    this.requests.push({ method, path: url.pathname, code: 0, watch, user });
    const record = this.requests.at(-1)!;
    res.on('finish', () => {
      record.code = res.statusCode;
    });
    const parts = url.pathname.split('/').filter(Boolean);
    if (url.pathname === '/version')
      return this.json(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0-kbpf-test', platform: 'linux/amd64' });
    if (url.pathname === '/healthz' || url.pathname === '/readyz') {
      res.writeHead(200).end('ok');
      return;
    }
    if (parts[0] === 'openapi' && parts[1] === 'v3') return this.openApi(res, parts.slice(2).join('/'));
    const tokenCall = this.tokens.route(method, parts);
    if (tokenCall) {
      const body = await this.body(req);
      try {
        return this.json(res, 201, tokenCall(body));
      } catch (e) {
        if (e instanceof TokenRequestError) throw new HttpError(e.code, e.reason, e.message);
        throw e;
      }
    }
    if (parts[0] === 'api' && parts.length === 1)
      return this.json(res, 200, {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: url.host }],
      });
    if (parts[0] === 'apis' && parts.length === 1) return this.json(res, 200, this.groupList());
    let group: string;
    let version: string;
    let rest: string[];
    if (parts[0] === 'api') {
      group = '';
      version = parts[1]!;
      rest = parts.slice(2);
    } else if (parts[0] === 'apis' && parts.length >= 2) {
      group = parts[1]!;
      if (parts.length === 2) {
        const g = this.groupList().groups.find((x) => x.name === group);
        if (!g) throw new HttpError(404, 'NotFound', `the server could not find the requested resource`);
        return this.json(res, 200, { kind: 'APIGroup', apiVersion: 'v1', ...g });
      }
      version = parts[2]!;
      rest = parts.slice(3);
    } else throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    if (rest.length === 0) return this.json(res, 200, this.resourceList(group, version));
    let ns: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      ns = rest[1];
      rest = rest.slice(2);
    }
    const [plural, name, sub] = rest;
    const rt = this.types.get(`${group ? `${group}/` : ''}${version}/${plural}`);
    if (!rt)
      throw new HttpError(
        404,
        'NotFound',
        `the server could not find the requested resource (${method} ${url.pathname})`,
      );
    if (rt.namespaced && name !== undefined && ns === undefined)
      throw new HttpError(404, 'NotFound', `${rt.plural} is namespaced: use /namespaces/NS/${rt.plural}/${name}`);
    if (!rt.namespaced && ns !== undefined) throw new HttpError(404, 'NotFound', `${rt.plural} is cluster-scoped`);
    if (sub !== undefined && !(sub === 'status' && rt.status))
      throw new HttpError(404, 'NotFound', `no subresource ${sub} of ${rt.plural}`);
    const q = url.searchParams;
    const table = method === 'GET' && wantsTable(req.headers.accept);
    const strict = q.get('fieldValidation') === 'Strict';
    if (name === undefined) {
      if (method === 'GET' && (q.get('watch') === 'true' || q.get('watch') === '1'))
        return this.watch(req, res, rt, ns, q, table);
      if (method === 'GET') {
        const l = this.list(rt, ns, q);
        return this.json(res, 200, table ? this.table(rt, l.items, q) : l);
      }
      if (method === 'POST') {
        const body = await this.body(req);
        const warnings: string[] = [];
        const created = this.create(rt, ns, body, warnings, strict);
        return this.json(res, 201, created, this.warningHeader(warnings));
      }
      throw new HttpError(405, 'MethodNotAllowed', `${method} on a collection is not supported`);
    }
    switch (method) {
      case 'GET': {
        const o = this.get(rt, ns, name);
        return this.json(res, 200, table ? this.table(rt, [o], q) : o);
      }
      case 'PUT': {
        const warnings: string[] = [];
        const out = this.update(rt, ns, name, await this.body(req), sub === 'status', warnings, false, strict);
        return this.json(res, 200, out, this.warningHeader(warnings));
      }
      case 'PATCH': {
        const ct = String(req.headers['content-type'] ?? '');
        // a strategic merge patch (kubectl apply's, for built-in kinds) is taken as a merge
        // patch without its directives: lists are replaced, not merged by key
        const strategic = ct.startsWith('application/strategic-merge-patch+json');
        if (!ct.startsWith('application/merge-patch+json') && !strategic)
          throw new HttpError(
            415,
            'UnsupportedMediaType',
            `the test API server supports only merge patches and strategic merge patches (got ${ct || 'none'})`,
          );
        const cur = structuredClone(this.get(rt, ns, name));
        const body = await this.body(req);
        const patched = mergePatch(cur, strategic ? withoutDirectives(body) : body) as Obj;
        const warnings: string[] = [];
        const out = this.update(rt, ns, name, patched, sub === 'status', warnings, true, strict);
        return this.json(res, 200, out, this.warningHeader(warnings));
      }
      case 'DELETE': {
        const body = await this.body(req).catch(() => ({}) as Obj);
        const policy =
          q.get('propagationPolicy') ?? (body as { propagationPolicy?: string }).propagationPolicy ?? 'Background';
        return this.json(res, 200, this.delete(rt, ns, name, policy));
      }
    }
    throw new HttpError(405, 'MethodNotAllowed', `${method} is not supported`);
  }

  /** GET /openapi/v3 (the index) and /openapi/v3/GROUP-VERSION-PATH (a document). */
  private openApi(res: ServerResponse, path: string): void {
    const docs = openApiDocuments(
      [...this.types.values()].map((rt) => ({
        ...rt,
        ...(rt.schema?.description ? { description: rt.schema.description } : {}),
      })),
    );
    if (!path) {
      this.json(res, 200, openApiIndex(docs));
      return;
    }
    const doc = docs.get(path);
    if (!doc) throw new HttpError(404, 'NotFound', `no OpenAPI v3 document for ${path}`);
    this.json(res, 200, doc);
  }

  private table(rt: ResourceType, items: Obj[], q: URLSearchParams): Record<string, unknown> {
    return toTable(rt.kind, rt.printerColumns, items, String(this.#rv), q.get('includeObject') ?? undefined);
  }

  private warningHeader(w: string[]): Record<string, string> {
    if (!w.length) return {};
    this.warnings.push(...w);
    return { Warning: w.map((x) => `299 - ${JSON.stringify(x)}`).join(', ') };
  }

  private groupList() {
    const groups = new Map<string, Set<string>>();
    for (const rt of this.types.values()) {
      if (!rt.group) continue;
      if (!groups.has(rt.group)) groups.set(rt.group, new Set());
      groups.get(rt.group)!.add(rt.version);
    }
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups].map(([name, vs]) => {
        const versions = [...vs].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions, preferredVersion: versions[0]! };
      }),
    };
  }

  private resourceList(group: string, version: string) {
    const rts = [...this.types.values()].filter((t) => t.group === group && t.version === version);
    if (rts.length === 0)
      throw new HttpError(404, 'NotFound', `the server could not find the requested resource (${group}/${version})`);
    const resources = [];
    for (const rt of rts) {
      resources.push({
        name: rt.plural,
        singularName: rt.singular,
        namespaced: rt.namespaced,
        kind: rt.kind,
        verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
        ...(rt.shortNames ? { shortNames: rt.shortNames } : {}),
        ...(rt.categories ? { categories: rt.categories } : {}),
      });
      if (rt.status)
        resources.push({
          name: `${rt.plural}/status`,
          singularName: '',
          namespaced: rt.namespaced,
          kind: rt.kind,
          verbs: ['get', 'patch', 'update'],
        });
    }
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources,
    };
  }

  private matcher(rt: ResourceType, q: URLSearchParams): (o: Obj) => boolean {
    const ls = q.get('labelSelector');
    const fs = q.get('fieldSelector');
    const labelOk = ls ? parseLabelSelector(ls) : () => true;
    const fieldTests: ((o: Obj) => boolean)[] = [];
    for (const part of (fs ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      const m = /^([^!=]+)(==|=|!=)(.*)$/.exec(part);
      if (!m) throw new HttpError(400, 'BadRequest', `invalid field selector ${JSON.stringify(part)}`);
      const [, field, op, value] = m;
      if (!['metadata.name', 'metadata.namespace', ...rt.selectable].includes(field!)) {
        throw new HttpError(400, 'BadRequest', `field label not supported: ${field}`);
      }
      fieldTests.push((o) => ((fieldValue(o, field!) ?? '') === value) === (op !== '!='));
    }
    return (o) => labelOk(o.metadata.labels ?? {}) && fieldTests.every((t) => t(o));
  }

  list(rt: ResourceType, ns: string | undefined, q: URLSearchParams) {
    const rv = q.get('resourceVersion');
    if (rv && rv !== '0' && q.get('resourceVersionMatch') === 'Exact' && Number(rv) <= this.#compactedRv) {
      throw new HttpError(410, 'Expired', `too old resource version: ${rv} (${this.#compactedRv})`);
    }
    const match = this.matcher(rt, q);
    const items = this.all(rt, ns)
      .filter(match)
      .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    return { kind: `${rt.kind}List`, apiVersion: gv(rt), metadata: { resourceVersion: String(this.#rv) }, items };
  }

  private watch(
    req: IncomingMessage,
    res: ServerResponse,
    rt: ResourceType,
    ns: string | undefined,
    q: URLSearchParams,
    table = false,
  ): void {
    const match = this.matcher(rt, q);
    const rvParam = q.get('resourceVersion') ?? '';
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    // watched as a Table (kubectl get -w): each object a one-row Table
    const shape = (type: string, object: unknown): unknown =>
      table && type !== 'ERROR' && type !== 'BOOKMARK' ? this.table(rt, [object as Obj], q) : object;
    const send = (type: string, object: unknown): void => {
      if (!res.writableEnded) res.write(`${JSON.stringify({ type, object: shape(type, object) })}\n`);
    };
    const timers: NodeJS.Timeout[] = [];
    const w: Watcher = {
      rt,
      namespace: ns,
      match,
      send,
      close: () => {
        this.watchers.delete(w);
        for (const t of timers) clearInterval(t);
        if (!res.writableEnded) res.end();
      },
    };
    req.on('close', () => w.close());
    if (rvParam === '' || rvParam === '0') {
      for (const o of this.all(rt, ns).filter(match)) send('ADDED', o);
    } else {
      const from = Number(rvParam);
      if (!Number.isFinite(from) || from < this.#compactedRv) {
        send('ERROR', {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: `too old resource version: ${rvParam} (${this.#compactedRv})`,
          reason: 'Expired',
          code: 410,
        });
        res.end();
        return;
      }
      for (const ev of this.events) if (ev.rv > from) this.deliver(w, ev);
    }
    this.watchers.add(w);
    if (q.get('allowWatchBookmarks') === 'true') {
      timers.push(
        setInterval(
          () =>
            send('BOOKMARK', { kind: rt.kind, apiVersion: gv(rt), metadata: { resourceVersion: String(this.#rv) } }),
          this.opts.bookmarkIntervalMs ?? 1000,
        ),
      );
    }
    const timeout = Number(q.get('timeoutSeconds') ?? 0);
    if (timeout > 0) timers.push(setTimeout(() => w.close(), timeout * 1000));
  }

  get(rt: ResourceType, ns: string | undefined, name: string): Obj {
    const o = this.objects.get(this.key(rt, ns, name));
    if (!o)
      throw new HttpError(404, 'NotFound', `${rt.plural}${rt.group ? `.${rt.group}` : ''} "${name}" not found`, {
        name,
        group: rt.group,
        kind: rt.plural,
      });
    return o;
  }

  private check(rt: ResourceType, obj: Obj, old: Obj | undefined, warnings: string[], strict = false): void {
    const expectedApi = gv(rt);
    if (obj.apiVersion !== undefined && obj.apiVersion !== expectedApi)
      throw new HttpError(400, 'BadRequest', `apiVersion ${obj.apiVersion} does not match ${expectedApi}`);
    if (obj.kind !== undefined && obj.kind !== rt.kind)
      throw new HttpError(400, 'BadRequest', `kind ${obj.kind} does not match ${rt.kind}`);
    obj.apiVersion = expectedApi;
    obj.kind = rt.kind;
    const name = obj.metadata.name;
    if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) || name.length > 253) {
      throw this.invalid(rt, name, [
        `metadata.name: Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'`,
      ]);
    }
    if (rt.plural === 'customresourcedefinitions') {
      const errs = validateCrd(obj);
      if (errs.length) throw this.invalid(rt, name, errs);
    }
    if (!rt.schema) return;
    const p: Problems = { errors: [], warnings: [] };
    validate(rt.schema, obj, '', p, old, true);
    // fieldValidation=Strict (kubectl's default): an unknown field is an error, not a warning
    if (strict && p.warnings.length)
      throw new HttpError(400, 'BadRequest', `strict decoding error: ${p.warnings.join(', ')}`, {
        name,
        group: rt.group,
        kind: rt.kind,
      });
    warnings.push(...p.warnings);
    if (p.errors.length) throw this.invalid(rt, name, p.errors);
  }

  /**
   * ValidatingAdmissionPolicies, as the real server runs them: each policy with a binding whose
   * validationActions include Deny, matching the request's group, resource and operation, whose
   * matchConditions all hold, is evaluated (variables first, in order); a validation that is
   * false, or an expression that fails (failurePolicy Fail), denies the request.
   */
  private admit(rt: ResourceType, operation: string, obj: Obj, old: Obj | undefined, subResource?: string): void {
    const list = (kind: 'ValidatingAdmissionPolicy' | 'ValidatingAdmissionPolicyBinding') => [
      ...this.objects.ofType(
        `admissionregistration.k8s.io/v1/${kind === 'ValidatingAdmissionPolicy' ? 'validatingadmissionpolicies' : 'validatingadmissionpolicybindings'}/`,
      ),
    ];
    const resource = subResource ? `${rt.plural}/${subResource}` : rt.plural;
    for (const binding of list('ValidatingAdmissionPolicyBinding')) {
      const b = binding as unknown as { metadata: Meta; spec: { policyName: string; validationActions?: string[] } };
      if (!(b.spec.validationActions ?? []).includes('Deny')) continue;
      const policy = list('ValidatingAdmissionPolicy').find((p) => p.metadata.name === b.spec.policyName) as
        | undefined
        | {
            metadata: Meta;
            spec: {
              matchConstraints?: {
                resourceRules?: { apiGroups?: string[]; resources?: string[]; operations?: string[] }[];
              };
              matchConditions?: { name: string; expression: string }[];
              variables?: { name: string; expression: string }[];
              validations?: { expression: string; message?: string; messageExpression?: string }[];
            };
          };
      if (!policy) continue;
      const any = (list: string[] | undefined, v: string) => !!list && (list.includes('*') || list.includes(v));
      const matches = (policy.spec.matchConstraints?.resourceRules ?? []).some(
        (r) => any(r.apiGroups, rt.group) && any(r.resources, resource) && any(r.operations, operation),
      );
      if (!matches) continue;
      const env: Record<string, unknown> = {
        object: obj,
        oldObject: old ?? null,
        request: { operation, subResource: subResource ?? '', userInfo: this.#requestUser.getStore() ?? ADMIN },
        variables: {},
      };
      const denied = (message: string): HttpError => {
        const gk = rt.group ? `${rt.plural}.${rt.group}` : rt.plural;
        return new HttpError(
          422,
          'Invalid',
          `${gk} "${obj.metadata.name}" is forbidden: ValidatingAdmissionPolicy '${policy.metadata.name}' with binding '${b.metadata.name}' denied request: ${message}`,
        );
      };
      const run = (src: string): unknown => {
        try {
          return compileExpression(src)(env);
        } catch (e) {
          throw denied(`expression '${src}' resulted in error: ${(e as Error).message}`);
        }
      };
      if (!(policy.spec.matchConditions ?? []).every((c) => run(c.expression) === true)) continue;
      for (const v of policy.spec.variables ?? [])
        (env.variables as Record<string, unknown>)[v.name] = run(v.expression);
      for (const v of policy.spec.validations ?? []) {
        if (run(v.expression) === true) continue;
        throw denied(
          v.messageExpression ? String(run(v.messageExpression)) : (v.message ?? `failed expression: ${v.expression}`),
        );
      }
    }
  }

  private invalid(rt: ResourceType, name: string, errors: string[]): HttpError {
    const gk = rt.group ? `${rt.kind}.${rt.group}` : rt.kind;
    return new HttpError(
      422,
      'Invalid',
      `${gk} "${name}" is invalid: ${errors.length > 1 ? `[${errors.join(', ')}]` : errors[0]}`,
      {
        name,
        group: rt.group,
        kind: rt.kind,
        causes: errors.map((e) => ({ reason: 'FieldValueInvalid', message: e, field: e.split(':')[0] })),
      },
    );
  }

  create(rt: ResourceType, ns: string | undefined, body: Obj, warnings: string[] = [], strict = false): Obj {
    const obj = structuredClone(body);
    obj.metadata = obj.metadata ?? ({} as Meta);
    if (!obj.metadata.name && obj.metadata.generateName)
      obj.metadata.name = `${obj.metadata.generateName}${randomUUID().slice(0, 5)}`;
    if (!obj.metadata.name)
      throw new HttpError(
        422,
        'Invalid',
        `${rt.kind} is invalid: metadata.name: Required value: name or generateName is required`,
      );
    if (rt.namespaced) {
      if (obj.metadata.namespace && ns && obj.metadata.namespace !== ns)
        throw new HttpError(
          400,
          'BadRequest',
          'the namespace of the object does not match the namespace of the request',
        );
      obj.metadata.namespace = ns ?? obj.metadata.namespace;
    } else delete obj.metadata.namespace;
    const k = this.key(rt, obj.metadata.namespace, obj.metadata.name);
    if (this.objects.has(k))
      throw new HttpError(
        409,
        'AlreadyExists',
        `${rt.plural}${rt.group ? `.${rt.group}` : ''} "${obj.metadata.name}" already exists`,
        { name: obj.metadata.name, group: rt.group, kind: rt.plural },
      );
    if (rt.status && rt.schema) delete obj.status; // the status subresource owns it
    this.check(rt, obj, undefined, warnings, strict);
    this.admit(rt, 'CREATE', obj, undefined, undefined);
    const m = obj.metadata;
    m.uid = randomUUID();
    m.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    m.generation = 1;
    delete m.deletionTimestamp;
    delete m.resourceVersion;
    if (rt.plural === 'customresourcedefinitions') this.establish(obj);
    m.resourceVersion = this.nextRv();
    this.objects.set(k, obj);
    this.emit('ADDED', rt, obj);
    return obj;
  }

  update(
    rt: ResourceType,
    ns: string | undefined,
    name: string,
    body: Obj,
    statusOnly: boolean,
    warnings: string[] = [],
    fromPatch = false,
    strict = false,
  ): Obj {
    const old = this.get(rt, ns, name);
    if (!body.metadata) body.metadata = {} as Meta;
    if (body.metadata.name !== undefined && body.metadata.name !== name)
      throw new HttpError(
        400,
        'BadRequest',
        `the name of the object (${body.metadata.name}) does not match the name on the URL (${name})`,
      );
    const rv = body.metadata.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== old.metadata.resourceVersion && !fromPatch) {
      throw new HttpError(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${rt.plural}${rt.group ? `.${rt.group}` : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name, group: rt.group, kind: rt.plural },
      );
    }
    let next: Obj;
    if (statusOnly) {
      next = structuredClone(old);
      next.status = structuredClone(body.status);
      if (next.status === undefined) delete next.status;
    } else {
      next = structuredClone(body);
      next.metadata.name = name;
      if (
        rt.status &&
        (rt.schema ||
          rt.plural === 'customresourcedefinitions' ||
          rt.plural === 'nodes' ||
          rt.plural === 'namespaces' ||
          rt.plural === 'pods')
      ) {
        if (old.status === undefined) delete next.status;
        else next.status = structuredClone(old.status);
      }
      for (const f of ['uid', 'creationTimestamp', 'generation', 'deletionTimestamp', 'namespace'] as const) {
        if (old.metadata[f] === undefined) delete next.metadata[f];
        else (next.metadata as Record<string, unknown>)[f] = old.metadata[f];
      }
      if (old.metadata.deletionTimestamp) {
        const added = (next.metadata.finalizers ?? []).filter((f) => !(old.metadata.finalizers ?? []).includes(f));
        if (added.length)
          throw new HttpError(
            422,
            'Forbidden',
            `no new finalizers can be added if the object is being deleted, found new finalizers ${JSON.stringify(added)}`,
          );
      }
    }
    next.metadata.resourceVersion = old.metadata.resourceVersion;
    this.check(rt, next, old, warnings, strict);
    this.admit(rt, 'UPDATE', next, old, statusOnly ? 'status' : undefined);
    const specOf = (o: Obj) =>
      canonical(
        Object.fromEntries(
          Object.entries(o).filter(([k]) => !['metadata', 'status', 'apiVersion', 'kind'].includes(k)),
        ),
      );
    if (!statusOnly && specOf(next) !== specOf(old)) next.metadata.generation = (old.metadata.generation ?? 1) + 1;
    if (canonical(next) === canonical(old)) return old; // no-op: no new resourceVersion, no event
    if (rt.plural === 'customresourcedefinitions') this.establish(next);
    next.metadata.resourceVersion = this.nextRv();
    const k = this.key(rt, old.metadata.namespace, name);
    this.objects.set(k, next);
    this.emit('MODIFIED', rt, next, old);
    if (next.metadata.deletionTimestamp && !(next.metadata.finalizers ?? []).length) this.remove(rt, next);
    return next;
  }

  delete(rt: ResourceType, ns: string | undefined, name: string, policy = 'Background'): Obj {
    const o = this.get(rt, ns, name);
    if (policy === 'Orphan') {
      for (const d of this.dependents(o.metadata.uid!)) {
        const drt = this.typeOf(d);
        this.update(
          drt,
          d.metadata.namespace,
          d.metadata.name,
          {
            ...structuredClone(d),
            metadata: {
              ...structuredClone(d.metadata),
              ownerReferences: d.metadata.ownerReferences!.filter((r) => r.uid !== o.metadata.uid),
            },
          },
          false,
        );
      }
    }
    if ((o.metadata.finalizers ?? []).length) {
      if (o.metadata.deletionTimestamp) return o;
      const next = structuredClone(o);
      next.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      next.metadata.resourceVersion = this.nextRv();
      this.objects.set(this.key(rt, o.metadata.namespace, name), next);
      this.emit('MODIFIED', rt, next, o);
      return next;
    }
    return this.remove(rt, o);
  }

  private remove(rt: ResourceType, o: Obj): Obj {
    this.objects.delete(this.key(rt, o.metadata.namespace, o.metadata.name));
    const gone = structuredClone(o);
    gone.metadata.resourceVersion = this.nextRv();
    this.emit('DELETED', rt, gone, o);
    if (rt.plural === 'customresourcedefinitions') this.unserve(o);
    // background garbage collection: dependents whose owners are all gone are deleted
    const uid = o.metadata.uid!;
    setImmediate(() => this.collect(uid));
    return gone;
  }

  private dependents(uid: string): Obj[] {
    return [...this.objects.values()].filter((d) => d.metadata.ownerReferences?.some((r) => r.uid === uid));
  }

  private typeOf(o: Obj): ResourceType {
    const [group, version] = o.apiVersion!.includes('/') ? o.apiVersion!.split('/') : ['', o.apiVersion!];
    const rt = [...this.types.values()].find((t) => t.group === group && t.version === version && t.kind === o.kind);
    if (!rt) throw new Error(`no type for ${o.apiVersion} ${o.kind}`);
    return rt;
  }

  private collect(uid: string): void {
    const uids = new Set([...this.objects.values()].map((o) => o.metadata.uid));
    for (const d of this.dependents(uid)) {
      if (d.metadata.ownerReferences!.some((r) => uids.has(r.uid))) continue;
      try {
        this.delete(this.typeOf(d), d.metadata.namespace, d.metadata.name);
      } catch {
        /* gone meanwhile */
      }
    }
  }

  // ---- CRDs ----

  private establish(crd: Obj): void {
    const spec = crd.spec as CrdSpec;
    for (const v of spec.versions) {
      if (!v.served) continue;
      const rt: ResourceType = {
        group: spec.group,
        version: v.name,
        plural: spec.names.plural,
        singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
        kind: spec.names.kind,
        namespaced: spec.scope === 'Namespaced',
        shortNames: spec.names.shortNames,
        categories: spec.names.categories,
        schema: v.schema?.openAPIV3Schema,
        status: !!v.subresources?.status,
        selectable: (v.selectableFields ?? []).map((f) => f.jsonPath.replace(/^\./, '')),
        ...(v.additionalPrinterColumns?.length ? { printerColumns: v.additionalPrinterColumns } : {}),
      };
      this.types.set(`${spec.group}/${v.name}/${spec.names.plural}`, rt);
    }
    crd.status = {
      conditions: [
        {
          type: 'NamesAccepted',
          status: 'True',
          reason: 'NoConflicts',
          message: 'no conflicts found',
          lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        },
        {
          type: 'Established',
          status: 'True',
          reason: 'InitialNamesAccepted',
          message: 'the initial names have been accepted',
          lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        },
      ],
      acceptedNames: spec.names,
      storedVersions: spec.versions.filter((v) => v.storage).map((v) => v.name),
    };
  }

  private unserve(crd: Obj): void {
    const spec = crd.spec as CrdSpec;
    for (const v of spec.versions) {
      const rt = this.types.get(`${spec.group}/${v.name}/${spec.names.plural}`);
      if (!rt) continue;
      for (const o of this.all(rt)) this.objects.delete(this.key(rt, o.metadata.namespace, o.metadata.name));
      this.types.delete(`${spec.group}/${v.name}/${spec.names.plural}`);
    }
  }
}

interface CrdSpec {
  group: string;
  scope: 'Cluster' | 'Namespaced';
  names: {
    kind: string;
    plural: string;
    singular?: string;
    listKind?: string;
    shortNames?: string[];
    categories?: string[];
  };
  versions: {
    name: string;
    served: boolean;
    storage: boolean;
    schema?: { openAPIV3Schema?: Schema };
    subresources?: { status?: object };
    selectableFields?: { jsonPath: string }[];
    additionalPrinterColumns?: PrinterColumn[];
  }[];
}

/** What the real API server checks of a CRD itself (the part that matters here). */
export function validateCrd(crd: Obj): string[] {
  const errs: string[] = [];
  const spec = crd.spec as CrdSpec | undefined;
  if (!spec) return ['spec: Required value'];
  if (!spec.group || !spec.names?.plural || !spec.names?.kind)
    errs.push('spec.group, spec.names.plural and spec.names.kind are required');
  if (crd.metadata.name !== `${spec.names?.plural}.${spec.group}`)
    errs.push(
      `metadata.name: Invalid value: ${JSON.stringify(crd.metadata.name)}: must be spec.names.plural+"."+spec.group`,
    );
  if (!['Cluster', 'Namespaced'].includes(spec.scope)) errs.push('spec.scope: Unsupported value');
  if (!Array.isArray(spec.versions) || spec.versions.filter((v) => v.storage).length !== 1)
    errs.push('spec.versions: Invalid value: must have exactly one version marked as storage version');
  for (const [i, v] of (spec.versions ?? []).entries()) {
    const s = v.schema?.openAPIV3Schema;
    if (!s) {
      errs.push(`spec.versions[${i}].schema.openAPIV3Schema: Required value: schemas are required`);
      continue;
    }
    errs.push(...structural(s, `spec.versions[${i}].schema.openAPIV3Schema`, true));
    errs.push(...compileSchemaRules(s, `spec.versions[${i}].schema.openAPIV3Schema`));
    for (const f of v.selectableFields ?? []) {
      let node: Schema | undefined = s;
      for (const k of f.jsonPath.replace(/^\./, '').split('.')) node = node?.properties?.[k];
      if (!node || !['string', 'integer', 'boolean'].includes(node.type ?? ''))
        errs.push(
          `spec.versions[${i}].selectableFields: Invalid value: ${JSON.stringify(f.jsonPath)}: must point to a string, integer or boolean field`,
        );
    }
  }
  return errs;
}

/** A structural schema: every node has a type (or int-or-string / preserve-unknown-fields), nothing else allowed. */
function structural(s: Schema, path: string, root = false): string[] {
  const errs: string[] = [];
  const allowed = new Set([
    'type',
    'properties',
    'additionalProperties',
    'items',
    'required',
    'enum',
    'minimum',
    'maximum',
    'minLength',
    'maxLength',
    'minItems',
    'maxItems',
    'maxProperties',
    'pattern',
    'format',
    'default',
    'nullable',
    'description',
    'x-kubernetes-int-or-string',
    'x-kubernetes-preserve-unknown-fields',
    'x-kubernetes-validations',
    'x-kubernetes-list-type',
    'x-kubernetes-list-map-keys',
    'x-kubernetes-map-type',
    'exclusiveMinimum',
    'exclusiveMaximum',
    'minProperties',
    'uniqueItems',
    'title',
    'example',
    'x-kubernetes-embedded-resource',
  ]);
  for (const k of Object.keys(s))
    if (!allowed.has(k)) errs.push(`${path}.${k}: Forbidden: not allowed in a structural schema`);
  if (!s.type && !s['x-kubernetes-int-or-string'] && !s['x-kubernetes-preserve-unknown-fields'])
    errs.push(`${path}.type: Required value: must not be empty for specified object fields`);
  if (root && s.type !== 'object') errs.push(`${path}.type: Invalid value: must be object at the root`);
  if (s.properties && s.additionalProperties !== undefined && s.additionalProperties !== false)
    errs.push(`${path}: Forbidden: additionalProperties and properties are mutually exclusive`);
  if (s.type === 'array' && !s.items) errs.push(`${path}.items: Required value: must be specified for arrays`);
  if (s['x-kubernetes-list-type'] === 'map' && !s['x-kubernetes-list-map-keys']?.length)
    errs.push(`${path}: x-kubernetes-list-map-keys required for a list of type map`);
  if (s.default !== undefined && root) errs.push(`${path}.default: Forbidden at the root`);
  for (const [k, p] of Object.entries(s.properties ?? {})) errs.push(...structural(p, `${path}.properties[${k}]`));
  if (typeof s.additionalProperties === 'object')
    errs.push(...structural(s.additionalProperties, `${path}.additionalProperties`));
  if (s.items) errs.push(...structural(s.items, `${path}.items`));
  return errs;
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** A strategic merge patch's directives ($patch, $retainKeys, $setElementOrder/…, $deleteFromPrimitiveList/…) removed. */
function withoutDirectives(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => !(x && typeof x === 'object' && '$patch' in x)).map(withoutDirectives);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v)
      .filter(([k]) => !k.startsWith('$'))
      .map(([k, x]) => [k, withoutDirectives(x)]),
  );
}

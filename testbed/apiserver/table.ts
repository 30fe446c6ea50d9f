// The Table format (meta.k8s.io/v1 Table) the test API server answers to a client that asks for
// it (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, as kubectl get does): columns from
// a CRD's additionalPrinterColumns (Name first; Age when it declares none), or a built-in kind's
// usual columns, and one row per object with its metadata as a PartialObjectMetadata.

export interface PrinterColumn {
  name: string;
  type: string;
  jsonPath: string;
  format?: string;
  description?: string;
  priority?: number;
}

type Obj = Record<string, unknown> & { metadata: Record<string, unknown> & { name: string } };

const AGE: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'when the object was created',
};

/** Columns of built-in kinds that kubectl users expect (the rest: Name and Age). */
const BUILTIN_COLUMNS: Record<string, PrinterColumn[]> = {
  Node: [
    { name: 'Status', type: 'string', jsonPath: '.status.conditions[0].type' },
    AGE,
    { name: 'Internal-IP', type: 'string', jsonPath: '.status.addresses[0].address', priority: 1 },
  ],
  Namespace: [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }, AGE],
  Pod: [
    { name: 'Status', type: 'string', jsonPath: '.status.phase' },
    AGE,
    { name: 'IP', type: 'string', jsonPath: '.status.podIP', priority: 1 },
    { name: 'Node', type: 'string', jsonPath: '.spec.nodeName', priority: 1 },
  ],
  Secret: [{ name: 'Type', type: 'string', jsonPath: '.type' }, AGE],
  Service: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    { name: 'Cluster-IP', type: 'string', jsonPath: '.spec.clusterIP' },
    AGE,
  ],
  Lease: [{ name: 'Holder', type: 'string', jsonPath: '.spec.holderIdentity' }, AGE],
  CustomResourceDefinition: [{ name: 'Created At', type: 'string', jsonPath: '.metadata.creationTimestamp' }],
};

/** The columns after Name: a CRD version's printer columns, or the kind's built-in ones. */
export function tableColumns(kind: string, printerColumns: readonly PrinterColumn[] | undefined): PrinterColumn[] {
  if (printerColumns?.length) return [...printerColumns];
  return BUILTIN_COLUMNS[kind] ?? [AGE];
}

/** The value at a simple JSONPath (.a.b, .a[0].b), or undefined. */
export function jsonPathValue(o: unknown, path: string): unknown {
  let v: unknown = o;
  for (const part of path.replace(/^\./, '').split('.')) {
    const m = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!m) return undefined;
    if (m[1]) {
      if (v === null || typeof v !== 'object') return undefined;
      v = (v as Record<string, unknown>)[m[1]];
    }
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) {
      if (!Array.isArray(v)) return undefined;
      v = v[Number(idx[1])];
    }
  }
  return v;
}

/** How long ago, as the real server spells an Age (Kubernetes' HumanDuration): 45s, 3m20s, 5h, 12d. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < -1) return '<invalid>';
  if (s < 0) return '0s';
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 ? `${m}m${s % 60}s` : `${m}m`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 ? `${h}h${m % 60}m` : `${h}h`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 ? `${d}d${h % 24}h` : `${d}d`;
  if (d < 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  return d % 365 && d < 365 * 8 ? `${y}y${d % 365}d` : `${y}y`;
}

/** A cell as the real server makes it: dates as ages, scalars as they are, the rest as JSON, absent as null. */
function cellOf(col: PrinterColumn, o: Obj): unknown {
  const v = jsonPathValue(o, col.jsonPath);
  if (v === undefined || v === null) return null;
  if (col.type === 'date') {
    const t = Date.parse(String(v));
    return Number.isNaN(t) ? String(v) : humanDuration(Date.now() - t);
  }
  if (col.type === 'integer' || col.type === 'number') return typeof v === 'number' ? v : null;
  if (col.type === 'boolean') return typeof v === 'boolean' ? v : null;
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

/** Does the Accept header ask for a Table? */
export function wantsTable(accept: string | undefined): boolean {
  return !!accept && /as=Table/.test(accept) && /g=meta\.k8s\.io/.test(accept);
}

/**
 * A Table of `items`. `includeObject`: Metadata (the default) puts each object's metadata in
 * its row, Object the whole object, None nothing.
 */
export function toTable(
  kind: string,
  printerColumns: readonly PrinterColumn[] | undefined,
  items: readonly Obj[],
  resourceVersion: string,
  includeObject = 'Metadata',
): Record<string, unknown> {
  const cols = tableColumns(kind, printerColumns);
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: [
      {
        name: 'Name',
        type: 'string',
        format: 'name',
        description: 'Name must be unique within a namespace.',
        priority: 0,
      },
      ...cols.map((c) => ({
        name: c.name,
        type: c.type,
        format: c.format ?? '',
        description: c.description ?? '',
        priority: c.priority ?? 0,
      })),
    ],
    rows: items.map((o) => ({
      cells: [o.metadata.name, ...cols.map((c) => cellOf(c, o))],
      ...(includeObject === 'None'
        ? {}
        : {
            object:
              includeObject === 'Object'
                ? o
                : { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
          }),
    })),
  };
}

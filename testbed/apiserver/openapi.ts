// The OpenAPI v3 documents the test API server publishes, as kubectl reads them: the index at
// /openapi/v3 naming one document per group-version, and each document with a path per served
// resource whose PATCH operation carries the kind (x-kubernetes-group-version-kind) and the
// `fieldValidation` query parameter — that is how kubectl decides the server validates fields
// itself (so `kubectl apply` with validation on sends fieldValidation=Strict instead of
// downloading schemas) — and components.schemas with each kind's schema: a CRD's own
// openAPIV3Schema, metadata as a reference to ObjectMeta, which `kubectl explain` walks.
import { createHash } from 'node:crypto';
import type { Schema } from './schema.js';

/** What the documents need to know of a served resource. */
export interface OpenApiResource {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
  status: boolean;
  schema?: Schema;
  /** what `kubectl explain` says of the kind */
  description?: string;
}

const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';

/** The part of ObjectMeta that explain shows (the real one has more). */
const OBJECT_META_SCHEMA = {
  type: 'object',
  description:
    'ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.',
  properties: {
    name: { type: 'string', description: 'Name must be unique within a namespace.' },
    generateName: { type: 'string', description: 'A prefix the server uses to generate a unique name.' },
    namespace: { type: 'string', description: 'The namespace of a namespaced object.' },
    uid: { type: 'string', description: 'The unique identifier of this object, set by the server.' },
    resourceVersion: { type: 'string', description: 'The version of this object, for optimistic concurrency.' },
    generation: { type: 'integer', format: 'int64', description: 'A sequence number for the desired state.' },
    creationTimestamp: { type: 'string', format: 'date-time', description: 'When this object was created.' },
    deletionTimestamp: { type: 'string', format: 'date-time', description: 'When this object will be deleted.' },
    labels: { type: 'object', additionalProperties: { type: 'string' }, description: 'Labels, for selection.' },
    annotations: { type: 'object', additionalProperties: { type: 'string' }, description: 'Annotations.' },
    finalizers: { type: 'array', items: { type: 'string' }, description: 'Must be empty before deletion.' },
    ownerReferences: {
      type: 'array',
      description: 'Objects this one depends on.',
      items: {
        type: 'object',
        required: ['apiVersion', 'kind', 'name', 'uid'],
        properties: {
          apiVersion: { type: 'string' },
          kind: { type: 'string' },
          name: { type: 'string' },
          uid: { type: 'string' },
          controller: { type: 'boolean' },
          blockOwnerDeletion: { type: 'boolean' },
        },
      },
    },
  },
};

function gvPath(r: { group: string; version: string }): string {
  return r.group ? `apis/${r.group}/${r.version}` : `api/${r.version}`;
}

/** The schema name of a kind, reversed-domain as the real server spells it (io.kbpf.v1alpha1.BpfDeployment). */
function schemaName(r: OpenApiResource): string {
  const domain = r.group ? r.group.split('.').reverse().join('.') : 'io.k8s.api.core';
  return `${domain}.${r.version}.${r.kind}`;
}

function gvk(r: OpenApiResource): { group: string; version: string; kind: string } {
  return { group: r.group, version: r.version, kind: r.kind };
}

/** A kind's schema: the CRD's, with metadata referring to ObjectMeta; a built-in's kept open. */
function kindSchema(r: OpenApiResource): Record<string, unknown> {
  const base: Record<string, unknown> = r.schema
    ? structuredClone(r.schema as Record<string, unknown>)
    : { type: 'object', 'x-kubernetes-preserve-unknown-fields': true };
  const props = { ...((base.properties as Record<string, unknown> | undefined) ?? {}) };
  props.apiVersion = {
    type: 'string',
    description: 'APIVersion defines the versioned schema of this representation of an object.',
  };
  props.kind = { type: 'string', description: 'Kind is a string value representing the REST resource.' };
  props.metadata = {
    allOf: [{ $ref: `#/components/schemas/${OBJECT_META}` }],
    description: "Standard object's metadata.",
  };
  base.properties = props;
  base.type = 'object';
  if (r.description && !base.description) base.description = r.description;
  base['x-kubernetes-group-version-kind'] = [gvk(r)];
  return base;
}

const FIELD_VALIDATION = {
  name: 'fieldValidation',
  in: 'query',
  description: 'how the server treats unknown or duplicate fields: Ignore, Warn or Strict',
  schema: { type: 'string', uniqueItems: true },
};

function operation(r: OpenApiResource, verb: string, ref: string, withBody: boolean): Record<string, unknown> {
  const content = { 'application/json': { schema: { $ref: ref } } };
  return {
    operationId: `${verb}${r.kind}`,
    'x-kubernetes-action': verb,
    'x-kubernetes-group-version-kind': gvk(r),
    parameters: withBody ? [FIELD_VALIDATION] : [],
    ...(withBody ? { requestBody: { content, required: true } } : {}),
    responses: { '200': { description: 'OK', content } },
  };
}

/** The OpenAPI v3 document of one group-version. */
export function groupVersionDocument(resources: readonly OpenApiResource[]): Record<string, unknown> {
  const schemas: Record<string, unknown> = { [OBJECT_META]: OBJECT_META_SCHEMA };
  const paths: Record<string, unknown> = {};
  for (const r of resources) {
    const name = schemaName(r);
    schemas[name] = kindSchema(r);
    const ref = `#/components/schemas/${name}`;
    const prefix = `/${gvPath(r)}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.plural}`;
    paths[prefix] = { get: operation(r, 'list', ref, false), post: operation(r, 'post', ref, true) };
    const item = {
      get: operation(r, 'get', ref, false),
      put: operation(r, 'put', ref, true),
      patch: operation(r, 'patch', ref, true),
      delete: operation(r, 'delete', ref, false),
    };
    paths[`${prefix}/{name}`] = item;
    if (r.status)
      paths[`${prefix}/{name}/status`] = {
        get: operation(r, 'get', ref, false),
        put: operation(r, 'put', ref, true),
        patch: operation(r, 'patch', ref, true),
      };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes (kbpf test API server)', version: 'v1.32.0' },
    paths,
    components: { schemas },
  };
}

/** The documents by their path under /openapi/v3 (api/v1, apis/kbpf.io/v1alpha1, …). */
export function openApiDocuments(resources: readonly OpenApiResource[]): Map<string, Record<string, unknown>> {
  const byGv = new Map<string, OpenApiResource[]>();
  for (const r of resources) {
    const k = gvPath(r);
    if (!byGv.has(k)) byGv.set(k, []);
    byGv.get(k)!.push(r);
  }
  const out = new Map<string, Record<string, unknown>>();
  for (const [k, rs] of byGv) out.set(k, groupVersionDocument(rs));
  return out;
}

/** The /openapi/v3 index: each document's URL with a hash of its content (clients cache by it). */
export function openApiIndex(docs: Map<string, Record<string, unknown>>): Record<string, unknown> {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const [k, doc] of docs) {
    const hash = createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase().slice(0, 128);
    paths[k] = { serverRelativeURL: `/openapi/v3/${k}?hash=${hash}` };
  }
  return { paths };
}

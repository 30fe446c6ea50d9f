/** kbpf packages: the OCI artifact format, the local OCI-layout store and the registry client. */

export * from './auth.js';
export * from './digest.js';
export * from './errors.js';
export * from './layout-store.js';
export { FileLock, type LockOptions, withFileLock } from './lock.js';
export * from './manifest.js';
export * from './media-types.js';
export * from './reference.js';
export * from './registry-client.js';

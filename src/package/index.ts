/** kbpf packages: the OCI artifact format, the local OCI-layout store and the registry client. */
export * from './media-types.js';
export * from './errors.js';
export * from './digest.js';
export * from './reference.js';
export * from './manifest.js';
export { FileLock, withFileLock, type LockOptions } from './lock.js';
export * from './layout-store.js';
export * from './auth.js';
export * from './registry-client.js';

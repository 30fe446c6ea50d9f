// Package signatures in cosign's key-based format (simple-signing.ts), keys (keys.ts), signing
// and verifying in the store or a registry (signing.ts), and the node trust policy (policy.ts).
export * from './keys.js';
export * from './policy.js';
export * from './signing.js';
export * from './simple-signing.js';

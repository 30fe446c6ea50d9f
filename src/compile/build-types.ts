// What `kbpf build` takes and gives (builder.ts for BPF sources, guest-build.ts for Wasm guests).
import type { LayoutStore, StoredPackage } from '../package/layout-store.js';
import type { PackageSpec } from '../package/package-spec.js';

export interface BuildOptions {
  /** name:version (default: from kbpf.yaml, else the directory name and 0.0.0) */
  tag?: string;
  store: LayoutStore;
  /** where vmlinux.h is cached */
  cacheDir: string;
  progress?: (message: string) => void;
  /** compile only these sources of the directory (file names), not every *.bpf.c */
  files?: string[];
  /** further include directories (absolute), searched after the source's own */
  includeDirs?: string[];
}

export interface BuildResult {
  stored: StoredPackage;
  spec: PackageSpec;
}

#!/usr/bin/env -S node --max-semi-space-size=1
// The kbpf command: eBPF programs shipped and run like containers. Build first: npx tsc -p .
// --max-semi-space-size=1 (MiB): a small young generation, so that the long-lived agent does not keep
// what a burst of requests allocated (about 10 MB at 1,000 instances, docs/benchmarks.md); V8 reads
// it only at start-up. The short-lived verbs do not notice it.
import { main } from '../dist/src/cli/main.js';

await main();

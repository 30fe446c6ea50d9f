#!/usr/bin/env node
// The kbpf command: eBPF programs shipped and run like containers. Build first: npx tsc -p .
import { main } from '../dist/src/cli/main.js';

await main();

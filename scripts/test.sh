#!/usr/bin/env bash
# The project's test command: setup (idempotent), build, then every test with node's runner.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mapfile -t files < <(find dist/test -name '*.test.js' | sort)
if [ $# -gt 0 ]; then files=("$@"); fi
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"

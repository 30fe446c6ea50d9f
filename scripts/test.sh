#!/usr/bin/env bash
# The project's test command: setup (idempotent), build, lint and format check, then every test
# with node's runner (or the test files given as arguments, without the lint step).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -gt 0 ]; then
  files=("$@")
else
  echo "test: lint, format and import cycles (npm run lint)"
  npm run --silent lint
  mapfile -t files < <(find dist/test -name '*.test.js' | sort)
fi
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"

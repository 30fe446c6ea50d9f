#!/usr/bin/env bash
# The main job on one machine, with the embedded default (local store, no registry, no cluster):
# build the example packages, start the agent, run opensnoop and show its live events, then
# remove everything again. DEMO_SECONDS (default 15) sets how long events are shown.
set -euo pipefail
cd "$(dirname "$0")/.."
# KBPF_SKIP_SETUP=1: already set up and built (the demo's own test runs it from the built tree)
[ -n "${KBPF_SKIP_SETUP:-}" ] || bash scripts/setup.sh

export KBPF_STATE_DIR="${KBPF_STATE_DIR:-/var/lib/kbpf}"
kbpf() { node bin/kbpf.js "$@"; }
seconds="${DEMO_SECONDS:-15}"

agent_pid=""
cleanup() {
  kbpf rm -f demo-opensnoop >/dev/null 2>&1 || true
  if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

echo "== building the example packages"
# every example that is a package (examples/plugin is an application embedding one)
for ex in examples/*/; do
  if [ -f "$ex/kbpf.yaml" ]; then kbpf build "$ex"; fi
done

if kbpf ps >/dev/null 2>&1; then
  echo "== using the agent already running at $KBPF_STATE_DIR"
else
  echo "== starting the agent (state in $KBPF_STATE_DIR)"
  bin/kbpf.js agent >"${TMPDIR:-/tmp}/kbpf-demo-agent.log" 2>&1 & # as users start it (with its V8 flags)
  agent_pid=$!
  for _ in $(seq 100); do kbpf ps >/dev/null 2>&1 && break; sleep 0.1; done
fi

kbpf images

echo "== running opensnoop"
kbpf rm -f demo-opensnoop >/dev/null 2>&1 || true
kbpf run --name demo-opensnoop opensnoop:1.0.0
kbpf ps

echo "== live events for ${seconds}s (every openat() on this machine)"
( for _ in $(seq "$seconds"); do cat /etc/hostname /etc/os-release >/dev/null; sleep 1; done ) &
timeout "$seconds" node bin/kbpf.js logs -f demo-opensnoop || true

echo "== removing the instance (nothing stays in the kernel)"
kbpf rm -f demo-opensnoop

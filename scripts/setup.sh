#!/usr/bin/env bash
# Idempotent setup for kbpf on a fresh clone (run as root):
#   Debian packages (clang, libbpf, bpftool, ...), npm ci, TypeScript + BPF build,
#   and the kernel file systems the runtime needs (bpffs, tracefs).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang llvm lld wasi-libc libclang-rt-dev-wasm32 libbpf-dev libbpf1 bpftool iproute2 iptables gcc make tar iputils-ping docker-registry skopeo prometheus util-linux haproxy wrk conntrack curl procps chromium mmdebstrap podman runc catatonit tcpdump zsh nftables systemtap-sdt-dev ${KBPF_EXTRA_APT:-})
# packages wanted for a command, which another package may already provide (e.g. kubectl)
declare -A FOR_COMMAND=([kubectl]=kubernetes-client)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
for c in "${!FOR_COMMAND[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("${FOR_COMMAND[$c]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true

echo "setup: building"
npm run --silent build

#!/usr/bin/env bash
# `npm run image [-- --push HOST:PORT]`: builds the kbpf agent and controller images from the
# Containerfile on this machine without pulling any base image, pushes them to a docker-registry
# and checks them there with skopeo.
#
# 1. the build stage's base, made here unless cached: Debian bookworm with the toolchain (clang,
#    llvm, libbpf-dev, bpftool) by mmdebstrap, plus node 20 and npm from this machine (Debian
#    bookworm's nodejs is 18), imported into podman as localhost/kbpf/build-base:bookworm; made
#    again when this script or NODE_BIN's node changes (build/image/build-base.stamp);
# 2. podman builds the Containerfile's `agent` and `controller` targets with that base
#    (--pull=never --build-arg BUILD_IMAGE=…): the build stage runs for real — npm ci (the npm
#    registry, through the host's network), the build, the runtime's Debian part copied from the
#    base's installed packages, scripts/image-stage.sh — and the runtime is FROM scratch; tagged
#    localhost/kbpf/kbpf:VERSION and localhost/kbpf/kbpf-controller:VERSION;
# 3. pushes both to HOST:PORT (--push), or to a docker-registry started for the purpose on
#    loopback and stopped after, and prints what skopeo inspect says: digest, layers and the
#    compressed size.
# NODE_BIN: the node 20 binary for the build base (default: the one on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
push=""
while [ $# -gt 0 ]; do
  case $1 in
    --push) push=$2; shift 2 ;;
    --no-build) shift ;; # the build happens in the Containerfile's build stage now (kept for old callers)
    *) echo "usage: scripts/image.sh [--push HOST:PORT]" >&2; exit 2 ;;
  esac
done
for tool in mmdebstrap podman skopeo; do
  command -v $tool >/dev/null || { echo "image: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
version=$(node -p 'require("./package.json").version')
name=${KBPF_IMAGE:-localhost/kbpf/kbpf}
base=localhost/kbpf/build-base:bookworm
work=build/image
toolchain=clang,llvm,libbpf-dev,bpftool,libbpf1,libstdc++6,ca-certificates
node_bin=$(readlink -f "${NODE_BIN:-$(command -v node)}")
[ "$("$node_bin" -p 'process.versions.node.split(".")[0]')" = 20 ] || { echo "image: $node_bin is not node 20" >&2; exit 1; }
npm_dir=$(dirname "$(dirname "$node_bin")")/lib/node_modules/npm
[ -f "$npm_dir/bin/npm-cli.js" ] || { echo "image: no npm beside $node_bin ($npm_dir)" >&2; exit 1; }
mkdir -p $work

# made again only when what goes into it changes (bump the 1 when the way it is made does)
stamp="build-base 1: $toolchain, node $("$node_bin" --version)"
if [ "$(cat $work/build-base.stamp 2>/dev/null)" != "$stamp" ] || ! podman image exists $base; then
  echo "image: making the build base $base (mmdebstrap, a few minutes)" >&2
  rm -f $work/build-base.tar
  mmdebstrap --quiet --variant=apt --include=$toolchain \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="cp -a '$node_bin' \"\$1/usr/bin/node\"" \
    --customize-hook="mkdir -p \"\$1/usr/lib/node_modules\" && cp -a '$npm_dir' \"\$1/usr/lib/node_modules/\"" \
    --customize-hook='ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/bin/npm"' \
    --customize-hook='ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/bin/npx"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm $work/build-base.tar
  podman import --quiet --change 'CMD ["/bin/bash"]' $work/build-base.tar $base >/dev/null
  rm -f $work/build-base.tar
  echo "$stamp" >$work/build-base.stamp
fi

# the host's CA bundle (with any local CA its TLS proxy needs) for the build stage's npm ci
ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
secret=()
[ -s "$ca" ] && secret=(--secret "id=ca,src=$ca")
for target in agent controller; do
  tag=$name:$version
  [ $target = controller ] && tag=$name-controller:$version
  podman build --quiet --runtime runc --pull=never --network=host "${secret[@]}" --build-arg BUILD_IMAGE=$base \
    --target $target -t "$tag" \
    -f Containerfile . >/dev/null
  echo "image: built $tag" >&2
done

registry_pid=""
registry_dir=""
cleanup() {
  if [ -n "$registry_pid" ]; then kill "$registry_pid" 2>/dev/null || true; fi
  if [ -n "$registry_dir" ]; then rm -rf "$registry_dir"; fi
}
trap cleanup EXIT
if [ -z "$push" ]; then
  registry_dir=$(mktemp -d /tmp/kbpf-image-registry.XXXXXX)
  port=$(node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
  printf 'version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$registry_dir" "$port" >"$registry_dir/config.yml"
  docker-registry serve "$registry_dir/config.yml" >"$registry_dir/log" 2>&1 &
  registry_pid=$!
  for _ in $(seq 50); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  push=127.0.0.1:$port
fi

for repo in kbpf kbpf-controller; do
  src=$name:$version
  [ $repo = kbpf-controller ] && src=$name-controller:$version
  dst=docker://$push/kbpf/$repo:$version
  podman push --quiet --tls-verify=false "$src" "$dst"
  skopeo inspect --tls-verify=false "$dst" >"$work/$repo.inspect.json"
  skopeo inspect --raw --tls-verify=false "$dst" >"$work/$repo.manifest.json"
  node -e '
    const [inspect, manifest, ref] = process.argv.slice(1).map((a, i) => (i < 2 ? require(a) : a));
    const bytes = manifest.layers.reduce((s, l) => s + l.size, manifest.config.size);
    const mb = (bytes / 2 ** 20).toFixed(1);
    console.log(`${ref}: ${inspect.Digest}, ${manifest.layers.length} layers, ${mb} MB compressed (${inspect.Os}/${inspect.Architecture})`);
  ' "$PWD/$work/$repo.inspect.json" "$PWD/$work/$repo.manifest.json" "$push/kbpf/$repo:$version"
done

#!/usr/bin/env bash
# `npm run image [-- --push HOST:PORT] [--no-build]`: builds the kbpf agent and controller images
# on this machine without pulling any base image, pushes them to a docker-registry and checks
# them there with skopeo.
#
# 1. the build (npx tsc -p . && node scripts/build-bpf.mjs), unless --no-build;
# 2. Debian's part of the runtime from Debian packages with mmdebstrap (libbpf1, libstdc++6 and
#    their dependencies, unpacked: --variant=extract), cached in build/image/ until this script
#    or the package list changes;
# 3. scripts/image-stage.sh: that, node (the one running here: Debian bookworm's nodejs is 18),
#    dist/src and the production node_modules;
# 4. podman builds the Containerfile's `agent` and `controller` targets FROM scratch, with the
#    laid-out directory as its `build` stage (--build-context), as localhost/kbpf/kbpf:VERSION and
#    localhost/kbpf/kbpf-controller:VERSION;
# 5. pushes both to HOST:PORT (--push), or to a docker-registry started for the purpose on
#    loopback and stopped after, and prints what skopeo inspect says: digest, layers and the
#    compressed size.
set -euo pipefail
cd "$(dirname "$0")/.."
push=""
build=1
while [ $# -gt 0 ]; do
  case $1 in
    --push) push=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: scripts/image.sh [--push HOST:PORT] [--no-build]" >&2; exit 2 ;;
  esac
done
for tool in mmdebstrap podman skopeo; do
  command -v $tool >/dev/null || { echo "image: needs $tool (apt-get install $tool)" >&2; exit 1; }
done
version=$(node -p 'require("./package.json").version')
name=${KBPF_IMAGE:-localhost/kbpf/kbpf}
work=build/image
packages=libbpf1,libstdc++6

[ $build = 1 ] && { npx tsc -p . && node scripts/build-bpf.mjs; }

stamp="$packages $(sha256sum scripts/image.sh | cut -c1-16)"
if [ "$(cat $work/debian.stamp 2>/dev/null)" != "$stamp" ]; then
  rm -rf $work/debian && mkdir -p $work
  mmdebstrap --quiet --variant=extract --include=$packages \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' bookworm $work/debian
  rm -rf $work/debian/dev/* # device nodes and /proc links: the container engine makes /dev
  echo "$stamp" >$work/debian.stamp
fi
rm -rf $work/stage && mkdir -p $work/stage/image
cp -a $work/debian $work/stage/image/rootfs
bash scripts/image-stage.sh $work/stage/image

for target in agent controller; do
  tag=$name:$version
  [ $target = controller ] && tag=$name-controller:$version
  podman build --quiet --build-context build=$work/stage --target $target -t "$tag" -f Containerfile . >/dev/null
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

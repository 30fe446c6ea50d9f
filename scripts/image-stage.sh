#!/usr/bin/env bash
# Lays out what the kbpf runtime image holds, under DIR (the Containerfile's build stage runs
# this, and scripts/image.sh runs it on this machine):
#   DIR/rootfs  the Debian part, already unpacked there by the caller (libbpf1 and the C
#               libraries node links: libc6, libstdc++6, libgcc-s1), pruned here to what runs;
#               plus node itself at /usr/local/bin/node and /etc/passwd with root and nonroot (65532)
#   DIR/app     /app: package.json, dist/src, dist/apps and dist/ui (the built JavaScript, BPF objects, the page) and the
#               production node_modules (no dev dependencies, no type declarations or source maps,
#               koffi's native module for this architecture only)
# Run from the repository root after the build (npx tsc -p . && node scripts/build-bpf.mjs).
# NODE_BIN: the node 20 binary to put in the image (default: the one on PATH).
set -euo pipefail
dir=${1:?usage: image-stage.sh DIR}
rootfs=$dir/rootfs
app=$dir/app
node_bin=${NODE_BIN:-$(command -v node)}
[ -d "$rootfs/usr/lib" ] || { echo "image-stage: $rootfs has no Debian packages unpacked" >&2; exit 1; }
[ -f dist/src/k8s/node/main.js ] || { echo "image-stage: build first (dist/src is missing)" >&2; exit 1; }
major=$("$node_bin" -p 'process.versions.node.split(".")[0]')
[ "$major" = 20 ] || { echo "image-stage: $node_bin is node $major, not 20" >&2; exit 1; }

# -- the Debian part: only what is loaded at run time
rm -rf "$rootfs"/dev/* "$rootfs"/etc/apt "$rootfs"/etc/dpkg "$rootfs"/var/lib/apt "$rootfs"/var/lib/dpkg \
  "$rootfs"/var/cache "$rootfs"/var/log "$rootfs"/usr/share/{doc,man,info,locale,lintian,gdb,gcc,bug} \
  "$rootfs"/usr/lib/x86_64-linux-gnu/gconv "$rootfs"/usr/lib/aarch64-linux-gnu/gconv \
  "$rootfs"/etc/{hostname,resolv.conf,fstab}
mkdir -p "$rootfs"/{dev,proc,sys,tmp,run,etc,usr/local/bin,var/lib/kbpf}
chmod 1777 "$rootfs/tmp"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/usr/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"

# -- the application
rm -rf "$app"
mkdir -p "$app/dist"
cp package.json "$app/"
cp -a dist/src "$app/dist/"
# the applications the agent and controller import (flow records, filters, maps) and the web view's page
[ -d dist/apps ] && cp -a dist/apps "$app/dist/"
[ -d dist/ui ] && cp -a dist/ui "$app/dist/"
find "$app/dist" \( -name '*.map' -o -name '*.d.ts' \) -delete
# the production dependency tree, as npm resolves it (nested copies included)
npm ls --omit=dev --all --parseable 2>/dev/null | tail -n +2 | sed "s#^$PWD/##" | sort -u |
  tar -cf - --no-recursion -T <(while read -r p; do find "$p/" -path "$p/node_modules" -prune -o -print; done) |
  tar -xf - -C "$app"
rm -rf "$app"/node_modules/@types
find "$app/node_modules" \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' \
  -o -name '*.markdown' \) -type f -delete
arch=$("$node_bin" -p 'process.arch')
if [ -d "$app/node_modules/koffi/build/koffi" ]; then
  find "$app/node_modules/koffi/build/koffi" -mindepth 1 -maxdepth 1 ! -name "linux_$arch" -exec rm -rf {} +
  rm -rf "$app/node_modules/koffi/src" "$app/node_modules/koffi/vendor" "$app/node_modules/koffi/doc"
fi
echo "image-stage: $(du -sh "$rootfs" | cut -f1) Debian + node, $(du -sh "$app" | cut -f1) app in $dir" >&2

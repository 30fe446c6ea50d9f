#!/usr/bin/env bash
# Copies the installed files of Debian packages PKG… and of every package they depend on
# (Depends and Pre-Depends, recursively, as dpkg records them: no package lists, no network) from
# this system into ROOTFS, keeping a merged /usr layout (/lib -> usr/lib…) where this system has
# one. The Containerfile's build stage runs it for the runtime's Debian part (libbpf1 and the C
# libraries node links), from the packages its toolchain already installed.
#   scripts/image-debian.sh ROOTFS PKG…
set -euo pipefail
rootfs=${1:?usage: image-debian.sh ROOTFS PKG...}
shift
[ $# -gt 0 ] || { echo "image-debian: no packages named" >&2; exit 2; }

declare -A seen=()
queue=("$@")
while [ ${#queue[@]} -gt 0 ]; do
  p=${queue[0]}
  queue=("${queue[@]:1}")
  [ -n "${seen[$p]:-}" ] && continue
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  if [ "$status" != installed ]; then
    # a virtual package or an alternative that is not installed: what provides it is listed too
    case " $* " in *" $p "*) echo "image-debian: $p is not installed" >&2; exit 1 ;; esac
    continue
  fi
  seen[$p]=1
  deps=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$p")
  IFS=',' read -ra parts <<<"$deps"
  for d in "${parts[@]}"; do
    # "a (>= 1) | b": every alternative that is installed counts; versions and :arch dropped
    IFS='|' read -ra alts <<<"$d"
    for a in "${alts[@]}"; do
      a=$(sed -E 's/\(.*\)//; s/:[a-z0-9]+//; s/[[:space:]]//g' <<<"$a")
      [ -n "$a" ] && queue+=("$a")
    done
  done
done

mkdir -p "$rootfs"
for d in bin lib lib64 sbin; do
  if [ -L "/$d" ] && [ ! -e "$rootfs/$d" ]; then
    mkdir -p "$rootfs/usr/$d"
    ln -s "usr/$d" "$rootfs/$d"
  fi
done
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for p in "${!seen[@]}"; do dpkg-query -L "$p"; done | sort -u | while read -r f; do
  # files and symlinks; not symlinks to directories (the merged /usr links are made above)
  if { [ -f "$f" ] || [ -L "$f" ]; } && ! { [ -L "$f" ] && [ -d "$f" ]; }; then
    case $f in /usr/share/doc/* | /usr/share/man/* | /usr/share/locale/* | /usr/share/lintian/*) continue ;; esac
    printf '%s\n' "${f#/}"
  fi
done >"$list"
tar -C / --no-recursion -cf - -T "$list" | tar -C "$rootfs" --keep-directory-symlink -xf -
echo "image-debian: $(printf '%s ' "${!seen[@]}")-> $(wc -l <"$list") files in $rootfs" >&2

#!/usr/bin/env bash
# Builds and runs the whole test suite again on Debian 13 (trixie): OpenSSL 3.5, p11-kit
# 0.25, OpenSC 0.26, GnuTLS 3.8, g++ 14. Debian 12 has only OpenSSL 3.0, and the provider
# must also be right on OpenSSL 3.2 and later.
#
# How: a minimal Debian 13 tree made with debootstrap in $CERTVAULT_DEBIAN13_ROOT (default
# /var/tmp/certvault-debian13, kept and reused by later runs), the same packages as
# scripts/install-deps.sh installed in it, the checkout's files copied to its /src, then
# cmake and ctest in a chroot. Needs root (or sudo), unshare(1) and Debian's mirror; about
# five minutes on 2 cores the first time, four when the tree exists.
#
# Everything runs in a private mount namespace: the tree's /proc, /sys and /dev mounts
# (and debootstrap's own) exist only for this run and vanish with it, even when it is
# killed, so nothing left behind can lead a later `rm -rf` of the tree into the host's
# /dev. One run at a time per tree (a lock beside it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tree=$(realpath -m "${CERTVAULT_DEBIAN13_ROOT:-/var/tmp/certvault-debian13}")
mirror=${CERTVAULT_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${1:-}" != --in-namespace ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "test-debian13: needs root or sudo (debootstrap, mount, chroot);" \
        "run as root, or set CERTVAULT_SKIP_DEBIAN13=1 to leave it out" >&2
      exit 1
    }
    SUDO=sudo
  fi
  $SUDO unshare --mount --propagation private true 2>/dev/null || {
    echo "test-debian13: cannot make a private mount namespace (unshare --mount);" \
      "it needs CAP_SYS_ADMIN; set CERTVAULT_SKIP_DEBIAN13=1 to leave it out" >&2
    exit 1
  }
  exec $SUDO env CERTVAULT_DEBIAN13_ROOT="$tree" CERTVAULT_DEBIAN_MIRROR="$mirror" \
    unshare --mount --propagation private "$root/scripts/test-debian13.sh" --in-namespace
fi

# From here on: root, in this run's own mount namespace.
exec 9>"$tree.lock"
flock -n 9 || {
  echo "test-debian13: another run is using $tree; wait for it to end" >&2
  exit 1
}
done_mark="$tree/.certvault-tree-complete"

if ! command -v debootstrap >/dev/null; then
  apt-get update -qq
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi
if [ ! -e "$done_mark" ]; then
  echo "== debootstrap Debian 13 (trixie) into $tree"
  rm -rf --one-file-system "$tree" "$tree.new"
  debootstrap --variant=minbase trixie "$tree.new" "$mirror" >/dev/null
  mv "$tree.new" "$tree"
  touch "$done_mark"
fi

for fs in proc sys dev dev/pts; do mount --bind "/$fs" "$tree/$fs"; done
cp --remove-destination /etc/resolv.conf "$tree/etc/resolv.conf"

echo "== copy the checkout to $tree/src"
rm -rf --one-file-system "$tree/src" "$tree/build"
mkdir -m 0755 "$tree/src"
# The files git tracks, as they are in the working tree (deleted ones left out).
git -C "$root" ls-files -z | while IFS= read -r -d '' f; do
  [ -e "$root/$f" ] && printf '%s\0' "$f"
done | tar -C "$root" --null -T - -cf - | tar -C "$tree/src" -xf -

in_tree() { chroot "$tree" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 "$@"; }
echo "== packages (scripts/install-deps.sh in the tree)"
in_tree bash -c 'cd /src && scripts/install-deps.sh >/dev/null'
in_tree bash -c 'echo "Debian $(cat /etc/debian_version), $(openssl version), $(g++ --version | head -1)"'
echo "== build and test"
jobs=$(nproc)
in_tree cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTVAULT_WERROR=ON >/dev/null
in_tree cmake --build /build -j"$jobs"
in_tree ctest --test-dir /build --output-on-failure -j"$jobs"

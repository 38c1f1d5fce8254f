#!/usr/bin/env bash
# Builds and runs the whole test suite again on Debian 13 (trixie): OpenSSL 3.5, p11-kit
# 0.25, OpenSC 0.26, GnuTLS 3.8, g++ 14. Debian 12 has only OpenSSL 3.0, and the provider
# must also be right on OpenSSL 3.2 and later.
#
# How: a minimal Debian 13 tree made with debootstrap in $CERTVAULT_DEBIAN13_ROOT (default
# /var/tmp/certvault-debian13, kept and reused by later runs), the same packages as
# scripts/install-deps.sh installed in it, the checkout's tracked files copied to its /src,
# then cmake and ctest in a chroot. Needs root (or sudo) and Debian's mirror; about six
# minutes on 2 cores the first time, four when the tree exists.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tree=${CERTVAULT_DEBIAN13_ROOT:-/var/tmp/certvault-debian13}
mirror=${CERTVAULT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

if ! command -v debootstrap >/dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends debootstrap
fi
if [ ! -x "$tree/usr/bin/apt-get" ]; then
  echo "== debootstrap Debian 13 (trixie) into $tree"
  $SUDO rm -rf "$tree"
  $SUDO debootstrap --variant=minbase trixie "$tree" "$mirror" >/dev/null
fi

mounted=()
cleanup() {
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do $SUDO umount -l "${mounted[$i]}" || true; done
}
trap cleanup EXIT
for fs in proc sys dev dev/pts; do
  $SUDO mount --bind "/$fs" "$tree/$fs"
  mounted+=("$tree/$fs")
done
$SUDO cp /etc/resolv.conf "$tree/etc/resolv.conf"

echo "== copy the checkout to $tree/src"
$SUDO rm -rf "$tree/src" "$tree/build"
$SUDO mkdir -m 0755 "$tree/src"
git -C "$root" ls-files -z | $SUDO tar -C "$root" --null -T - -cf - | $SUDO tar -C "$tree/src" -xf -

in_tree() { $SUDO chroot "$tree" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 "$@"; }
echo "== packages (scripts/install-deps.sh in the tree)"
in_tree bash -c 'cd /src && scripts/install-deps.sh >/dev/null'
in_tree bash -c 'echo "Debian $(cat /etc/debian_version), $(openssl version), $(g++ --version | head -1)"'
echo "== build and test"
jobs=$(nproc)
in_tree cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
in_tree cmake --build /build -j"$jobs"
in_tree ctest --test-dir /build --output-on-failure -j"$jobs"

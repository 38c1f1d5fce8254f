#!/usr/bin/env bash
# Builds the Debian packages on Debian 13 (trixie), running the whole test suite as the
# build's test step, then installs them there and runs debian/tests/installed: OpenSSL 3.5,
# p11-kit 0.25, OpenSC 0.26, GnuTLS 3.8, curl 8.14, g++ 14. Debian 12 has only OpenSSL 3.0,
# and the provider must also be right on OpenSSL 3.2 and later. Warnings are errors here
# (DEB_BUILD_OPTIONS=certvault-werror, packaging/README.md). The packages are left in
# build-deb13/ (or $CERTVAULT_DEB13_DIR).
#
# How: a minimal Debian 13 tree made with debootstrap in $CERTVAULT_DEBIAN13_ROOT (default
# /var/tmp/certvault-debian13, kept and reused by later runs, with what earlier runs
# installed in it), debian/control's Build-Depends installed there (`apt-get build-dep`,
# nothing from the host), the checkout's files copied to its /build/src, then
# `dpkg-buildpackage -us -uc -b` in a chroot. Needs root (or sudo), unshare(1) and Debian's
# mirror; about five minutes on 2 cores once the tree exists, about three more the first
# time (debootstrap and the Build-Depends).
#
# Everything runs in a private mount namespace: the tree's /proc, /sys and /dev mounts
# (and debootstrap's own) exist only for this run and vanish with it, even when it is
# killed, so nothing left behind can lead a later `rm -rf` of the tree into the host's
# /dev. One run at a time per tree (a lock beside it).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tree=$(realpath -m "${CERTVAULT_DEBIAN13_ROOT:-/var/tmp/certvault-debian13}")
mirror=${CERTVAULT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
out=$(realpath -m "${CERTVAULT_DEB13_DIR:-$root/build-deb13}")

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
    CERTVAULT_DEB13_DIR="$out" \
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

in_tree() { chroot "$tree" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }
packages="certvault libcertvault-pkcs11 openssl-provider-certvault"

# An earlier run's packages go first: the suite must load the build's provider and module,
# never installed ones from OpenSSL's or p11-kit's directories.
# shellcheck disable=SC2086
in_tree dpkg --purge $packages >/dev/null 2>&1 || true

echo "== copy the checkout to $tree/build/src"
rm -rf --one-file-system "$tree/src" "$tree/build"
mkdir -m 0755 "$tree/build" "$tree/build/src"
# The files git tracks, as they are in the working tree (deleted ones left out).
git -C "$root" ls-files -z | while IFS= read -r -d '' f; do
  if [ -e "$root/$f" ] || [ -L "$root/$f" ]; then printf '%s\0' "$f"; fi
done | tar -C "$root" --null -T - -cf - | tar -C "$tree/build/src" -xf -

# debian/control's Build-Depends (with the test suite's), and what debian/tests/installed
# uses besides; the mirror is asked only when something is missing.
if ! in_tree sh -c 'cd /build/src && dpkg-checkbuilddeps &&
  dpkg-query -W -f=\${db:Status-Status} bash-completion | grep -qx installed' \
  >/dev/null 2>&1; then
  echo "== Build-Depends (apt-get build-dep in the tree)"
  in_tree apt-get update -qq
  in_tree sh -c 'cd /build/src && apt-get build-dep -y -qq --no-install-recommends ./ >/dev/null'
  in_tree apt-get install -y -qq --no-install-recommends bash-completion >/dev/null
fi
in_tree bash -c 'echo "Debian $(cat /etc/debian_version), $(openssl version), $(g++ --version | head -1)"'

echo "== dpkg-buildpackage -us -uc -b (the test step runs the whole suite)"
# No -dbgsym packages: nobody installs them from here, and they cost a minute of xz.
in_tree sh -c "cd /build/src && DEB_BUILD_OPTIONS='parallel=$(nproc) noautodbgsym certvault-werror' \
  nice dpkg-buildpackage -us -uc -b"
rm -rf --one-file-system "$out"
mkdir -p "$out"
cp "$tree"/build/*.deb "$out/"
chown -R --reference="$root" "$out"
ls -1 "$out"

echo "== install the packages, debian/tests/installed"
# What the packages depend on was installed with the Build-Depends; should anything be
# missing from a tree whose package lists are old, they are brought up to date once.
install_debs() { in_tree sh -c 'apt-get install -y -qq --no-install-recommends /build/*.deb >/dev/null'; }
if ! install_debs; then
  in_tree apt-get update -qq
  install_debs
fi
in_tree /build/src/debian/tests/installed

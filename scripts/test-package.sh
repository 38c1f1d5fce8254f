#!/usr/bin/env bash
# Installs the Debian packages (scripts/build-package.sh; their directory is the argument,
# build-deb/ by default) into a clean Debian 12 (bookworm) chroot and tests them as an
# operator meets them: debian/tests/installed (the CLI, p11-kit listing the module, OpenSSL
# loading the provider by name, a mutual-TLS handshake with the installed files only); an
# upgrade to the same packages repacked with a higher version, a vault made before it
# byte-identical after; debian/tests/remove-purge (remove and purge leave the vault and the
# certvault user); a purge right after install leaves nothing the packages made; and the
# tree's files after all that compared with before the install.
#
# How: a minimal Debian 12 tree made with debootstrap in $CERTVAULT_DEBIAN12_ROOT (default
# /var/tmp/certvault-debian12, kept and reused; never changed after it is made), copied
# afresh for each run to $CERTVAULT_DEBIAN12_ROOT.run, the packages' dependencies installed
# there from Debian's mirror (downloaded .debs kept beside the tree), then the tests in a
# chroot. Needs root (or sudo) and unshare(1); everything runs in a private mount namespace
# (as scripts/test-debian13.sh does). One run at a time per tree. About two minutes once
# the tree exists.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
debs=$(realpath -m "${1:-$root/build-deb}")
tree=$(realpath -m "${CERTVAULT_DEBIAN12_ROOT:-/var/tmp/certvault-debian12}")
mirror=${CERTVAULT_DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ "${2:-}" != --in-namespace ]; then
  ls "$debs"/certvault_*.deb "$debs"/libcertvault-pkcs11_*.deb \
    "$debs"/openssl-provider-certvault_*.deb >/dev/null 2>&1 || {
    echo "test-package: no certvault packages in $debs; build them with" \
      "scripts/build-package.sh, or name their directory" >&2
    exit 1
  }
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
      echo "test-package: needs root or sudo (debootstrap, mount, chroot)" >&2
      exit 1
    }
    SUDO=sudo
  fi
  exec $SUDO env CERTVAULT_DEBIAN12_ROOT="$tree" CERTVAULT_DEBIAN_MIRROR="$mirror" \
    unshare --mount --propagation private "$root/scripts/test-package.sh" "$debs" --in-namespace
fi

# From here on: root, in this run's own mount namespace.
exec 9>"$tree.lock"
flock -n 9 || {
  echo "test-package: another run is using $tree; wait for it to end" >&2
  exit 1
}
run="$tree.run"
archives="$tree.archives"
done_mark="$tree/.certvault-tree-complete"

command -v debootstrap >/dev/null || "$root/scripts/install-deps.sh" debootstrap
if [ ! -e "$done_mark" ]; then
  echo "== debootstrap Debian 12 (bookworm) into $tree"
  rm -rf --one-file-system "$tree" "$tree.new"
  debootstrap --variant=minbase bookworm "$tree.new" "$mirror" >/dev/null
  mv "$tree.new" "$tree"
  touch "$done_mark"
fi

echo "== a fresh copy of the tree in $run"
rm -rf --one-file-system "$run"
cp -a "$tree" "$run"
mkdir -p "$archives" "$run/debs" "$run/tests"
for fs in proc sys dev dev/pts; do mount --bind "/$fs" "$run/$fs"; done
mount --bind "$archives" "$run/var/cache/apt/archives"
cp --remove-destination /etc/resolv.conf "$run/etc/resolv.conf"
cp "$debs"/certvault_*.deb "$debs"/libcertvault-pkcs11_*.deb \
  "$debs"/openssl-provider-certvault_*.deb "$run/debs/"
cp "$root"/debian/tests/* "$run/tests/"

in_tree() { chroot "$run" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

echo "== the packages' dependencies, and what the tests use"
# Depends of the three packages, versions dropped, the first of each alternative.
deps=$(for d in "$run"/debs/*.deb; do dpkg-deb -f "$d" Depends; done | tr ',' '\n' |
  sed 's/|.*//; s/(.*)//; s/^ *//; s/ *$//' | grep -v '^$' | sort -u)
# shellcheck disable=SC2086
in_tree apt-get update -qq
# shellcheck disable=SC2086
in_tree apt-get install -y -qq --no-install-recommends $deps openssl p11-kit man-db bash-completion >/dev/null
snapshot() {
  in_tree find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /tmp \
    -o -path /var/cache -o -path /var/lib/apt -o -path /var/lib/dpkg -o -path /var/log \
    -o -path /debs -o -path /tests -o -path /root \) -prune -o -print | sort
}
snapshot >"$tree.before.files"

echo "== apt install ./certvault_*.deb ./libcertvault-pkcs11_*.deb ./openssl-provider-certvault_*.deb"
in_tree sh -c 'apt-get install -y -qq --no-install-recommends /debs/*.deb >/dev/null'
in_tree dpkg-query -W certvault libcertvault-pkcs11 openssl-provider-certvault

echo "== debian/tests/installed"
in_tree /tests/installed

echo "== upgrade: the same packages repacked with a higher version, over a vault"
in_tree sh -c 'set -e; umask 077; printf "upgrade-pin\n" >/root/pin
  certvault --vault /root/vault --pin-file /root/pin init --label upgrade >/dev/null
  certvault --vault /root/vault --pin-file /root/pin create before-upgrade --end-date +7d --self-signed >/dev/null
  cd /root/vault && find . -type f -exec sha256sum {} + | sort >/root/vault.sums'
mkdir "$run/debs/upgrade"
for d in "$run"/debs/*.deb; do
  unpacked=$(mktemp -d)
  dpkg-deb -R "$d" "$unpacked"
  version=$(sed -n 's/^Version: //p' "$unpacked/DEBIAN/control")
  sed -i "s/^Version: .*/Version: $version+upgrade1/" "$unpacked/DEBIAN/control"
  dpkg-deb -b "$unpacked" "$run/debs/upgrade/" >/dev/null
  rm -rf "$unpacked"
done
in_tree sh -c 'apt-get install -y -qq --no-install-recommends /debs/upgrade/*.deb >/dev/null'
in_tree sh -c 'dpkg-query -W -f="\${Version}\n" certvault | grep -q "+upgrade1$"' || {
  echo "test-package: the upgrade was not installed" >&2
  exit 1
}
in_tree sh -c 'cd /root/vault && find . -type f -exec sha256sum {} + | sort | cmp -s - /root/vault.sums' || {
  echo "test-package: the vault changed on upgrade" >&2
  exit 1
}
in_tree certvault --vault /root/vault list | grep -q before-upgrade
echo "the vault is byte-identical after the upgrade and still lists its entry"
rm -rf "$run/root/vault" "$run/root/pin" "$run/root/vault.sums"

echo "== debian/tests/remove-purge"
in_tree /tests/remove-purge

echo "== install, then purge at once: /var/lib/certvault (empty) goes, the user stays"
rm -rf --one-file-system "$run/var/lib/certvault"
in_tree sh -c 'apt-get install -y -qq --no-install-recommends /debs/*.deb >/dev/null'
[ -d "$run/var/lib/certvault" ] || { echo "test-package: no /var/lib/certvault" >&2; exit 1; }
in_tree dpkg --purge certvault libcertvault-pkcs11 openssl-provider-certvault >/dev/null
[ ! -e "$run/var/lib/certvault" ] || {
  echo "test-package: purge left the empty /var/lib/certvault" >&2
  exit 1
}
in_tree getent passwd certvault >/dev/null || {
  echo "test-package: purge removed the certvault user" >&2
  exit 1
}
snapshot >"$tree.after.files"
if ! diff "$tree.before.files" "$tree.after.files" >"$tree.files.diff"; then
  echo "test-package: the tree's files differ from before the install:" >&2
  cat "$tree.files.diff" >&2
  exit 1
fi
echo "test-package: installed, used, upgraded, removed and purged; nothing left but the certvault user"

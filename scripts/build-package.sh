#!/usr/bin/env bash
# Builds the Debian packages (debian/) on this machine: certvault, libcertvault-pkcs11 and
# openssl-provider-certvault, into build-deb/ (or $CERTVAULT_DEB_DIR). The build runs the
# test suite unless DEB_BUILD_OPTIONS has nocheck. Installs what the build needs first.
#
# dpkg-buildpackage writes its packages next to the source tree, so the tracked files are
# copied to build-deb/src and built there, leaving the checkout's parent alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${CERTVAULT_DEB_DIR:-$root/build-deb}")
"$root/scripts/install-deps.sh"
"$root/scripts/install-deps.sh" debhelper dpkg-dev fakeroot lintian
rm -rf "$out"
mkdir -p "$out/src"
git -C "$root" ls-files -z | while IFS= read -r -d '' f; do
  if [ -e "$root/$f" ] || [ -L "$root/$f" ]; then printf '%s\0' "$f"; fi
done | tar -C "$root" --null -T - -cf - | tar -C "$out/src" -xf -
cd "$out/src"
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$(nproc)"
dpkg-buildpackage -us -uc -b
cd "$out"
rm -rf src
ls -1 "$out"/*.deb
# lintian's verdict; debian/*.lintian-overrides give the reason for each override.
lintian --fail-on error,warning "$out"/*.changes

#!/bin/sh
# `cmake --install BUILD --prefix DIR` writes every file under DIR (install_manifest.txt
# lists them), nothing into /usr or /etc; the uninstall script then removes them all.
set -eu
build=$1
src=$2
# A CERTVAULT_SYSTEM_PATHS build (the Debian package's; $3 is 1) installs into the
# directories OpenSSL, p11-kit and systemd name, absolute by design: a --prefix install
# would write into the system itself.
if [ "${3:-0}" = 1 ]; then
  echo "skipped: CERTVAULT_SYSTEM_PATHS=ON puts the system directories outside any prefix"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
# The build's own install_manifest.txt is left as it was (a user's install may have made it).
manifest="$build/install_manifest.txt"
[ ! -e "$manifest" ] || cp -p "$manifest" "$tmp/manifest.saved"
restore() { if [ -e "$tmp/manifest.saved" ]; then cp -p "$tmp/manifest.saved" "$manifest"; else rm -f "$manifest"; fi; }
cmake --install "$build" --prefix "$prefix" >"$tmp/install.out" 2>&1 ||
  { cat "$tmp/install.out"; restore; exit 1; }
cp "$manifest" "$tmp/manifest"
restore
count=$(grep -c '' "$tmp/manifest")  # CMake leaves out the last newline
[ "$count" -gt 0 ] || { echo "install_manifest.txt is empty"; exit 1; }
outside=$(grep -v "^$prefix/" "$tmp/manifest" || true)
[ -z "$outside" ] || { echo "installed outside the prefix $prefix:"; echo "$outside"; exit 1; }
for f in bin/certvault share/doc/certvault/examples/openssl-certvault.cnf; do
  [ -e "$prefix/$f" ] || { echo "not installed: $prefix/$f"; exit 1; }
done
found=$(cd "$prefix" && find . -type f -o -type l | wc -l)
[ "$found" -eq "$count" ] ||
  { echo "install_manifest.txt lists $count files, the prefix holds $found"; exit 1; }
cmake -DMANIFEST="$tmp/manifest" -P "$src/cmake/uninstall.cmake" >/dev/null
left=$(cd "$prefix" && find . -type f -o -type l)
[ -z "$left" ] || { echo "left after uninstall:"; echo "$left"; exit 1; }
echo "cmake --install --prefix: all $count files under the prefix; uninstall removed them"

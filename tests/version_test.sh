#!/bin/sh
# One version (project(VERSION)) in `certvault --version`, the provider's
# OSSL_PROV_PARAM_VERSION (as `openssl list -providers -verbose` shows it) and the PKCS#11
# module's C_GetInfo libraryVersion (as `pkcs11-tool -I` shows it, major.minor).
set -eu
version=$1
cli=$2
provider_dir=$3
module=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HOME="$tmp"
fail=0
cli_version=$("$cli" --version | awk '{print $2}')
[ "$cli_version" = "$version" ] || { echo "certvault --version says $cli_version, not $version"; fail=1; }
provider_version=$(OPENSSL_CONF=/dev/null openssl list -providers -verbose \
  -provider-path "$provider_dir" -provider certvault |
  awk '/^  certvault$/ {p = 1} p && $1 == "version:" {print $2; exit}')
[ "$provider_version" = "$version" ] ||
  { echo "the provider's version is '$provider_version', not $version"; fail=1; }
major_minor=${version%.*}
info=$(pkcs11-tool --module "$module" -I 2>&1) || { echo "$info"; exit 1; }
library_version=$(printf '%s\n' "$info" | sed -n 's/^Library .*(ver \([0-9.]*\)).*/\1/p')
[ "$library_version" = "$major_minor" ] ||
  { echo "C_GetInfo's libraryVersion is '$library_version', not $major_minor"; echo "$info"; fail=1; }
[ "$fail" -eq 0 ] && echo "certvault, certvault.so and the PKCS#11 module all say $version"
exit "$fail"

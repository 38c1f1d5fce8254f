#!/usr/bin/env bash
# The main job, end to end, in a throwaway folder: a vault, its CA, a client certificate,
# listed, shown with its URIs, exported once (and the second export refused).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target certvault >/dev/null

work=$(mktemp -d /tmp/certvault-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cv() { echo "+ certvault $*" >&2; build/tools/certvault --vault "$work/vault" --pin-file "$work/pin" "$@"; }
umask 077
printf 'demo-pin-%s\n' "$RANDOM$RANDOM" >"$work/pin"

cv init --label ops
cv ca create --end-date +730d --subject "/CN=ops demo CA"
cv create api-prod --end-date +365d
cv list
cv show api-prod
cv export api-prod -o "$work/api-prod.p12" | tee "$work/export.txt"
# The password is shown once; keep it only for the check below, in the throwaway folder.
sed -n 's/^PKCS#12 password (shown once): //p' "$work/export.txt" >"$work/p12pass"
echo "+ openssl pkcs12 -info -noout (with that password)" >&2
openssl pkcs12 -info -noout -in "$work/api-prod.p12" -passin "file:$work/p12pass"
openssl pkcs12 -in "$work/api-prod.p12" -passin "file:$work/p12pass" -nokeys -clcerts |
  openssl x509 -noout -subject -enddate -ext extendedKeyUsage
if cv export api-prod -o "$work/again.p12"; then
  echo "demo: the second export should have been refused" >&2
  exit 1
fi
cv check
echo "demo: done; the vault was in $work/vault and is now removed" >&2

#!/usr/bin/env bash
# The main job, end to end, in a throwaway folder: a vault, its CA, a client certificate;
# the agent unlocked once, and a program running as another user with no PIN presenting the
# certificate by URI in a real mutual-TLS handshake through the OpenSSL provider; the
# agent's status and audit; the entry listed, shown with its URIs, exported once (and the
# second export refused); a renewal rule, what is due, and a renewal under the same URI;
# and the vault locked again.
# CERTVAULT_BUILD_DIR chooses the build directory (default: build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
build=${CERTVAULT_BUILD_DIR:-build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target certvault certvault-provider >/dev/null

work=$(mktemp -d /tmp/certvault-demo.XXXXXX)
server_pid=
agent_pid=
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  [ -z "$agent_pid" ] || { kill "$agent_pid" 2>/dev/null; wait "$agent_pid" 2>/dev/null; } || true
  rm -rf "$work"
}
trap cleanup EXIT
cv() { echo "+ certvault $*" >&2; "$build/tools/certvault" --vault "$work/vault" --pin-file "$work/pin" "$@"; }
umask 077
printf 'demo-pin-%s\n' "$RANDOM$RANDOM" >"$work/pin"

cv init --label ops
cv ca create --end-date +730d --subject "/CN=ops demo CA"
cv create api-prod --end-date +365d

# The agent: the operator unlocks the vault once; from then on a program running as
# another user, with no PIN, no pin-source and no access to the vault directory, presents
# the vault's certificate by URI. (As root the demo makes that user; otherwise the program
# runs as you, still with no PIN.)
client=()
if [ "$(id -u)" -eq 0 ]; then
  getent group certvault >/dev/null || groupadd --system certvault
  getent passwd certvault-demo >/dev/null ||
    useradd --system --no-create-home --shell /usr/sbin/nologin --groups certvault certvault-demo
  client=(setpriv --reuid=certvault-demo --regid=certvault-demo --init-groups)
fi
mkdir -p "$work/run/ossl-modules" && chmod 755 "$work" "$work/run" "$work/run/ossl-modules"
cp "$build/provider/certvault.so" "$work/run/ossl-modules/" # readable by the demo user
chmod 755 "$work/run/ossl-modules/certvault.so"
echo "+ certvault agent --system --socket $work/run/agent.sock &" >&2
"$build/tools/certvault" --vault "$work/vault" agent --system --socket "$work/run/agent.sock" \
  --audit-log "$work/audit.log" 2>"$work/agent.err" &
agent_pid=$!
for _ in $(seq 200); do [ -S "$work/run/agent.sock" ] && break; sleep 0.05; done
export CERTVAULT_AGENT_SOCK="$work/run/agent.sock"
cv unlock
[ ${#client[@]} -eq 0 ] || cv access api-prod allow --uid certvault-demo

# Mutual TLS: `openssl s_server` requires a client certificate from the vault's CA, and
# `openssl s_client` presents the vault's certificate and key by URI, through the provider,
# which asks the agent to sign. The system openssl.cnf is left out (OPENSSL_CONF=/dev/null);
# the providers come from the command line.
cv ca show | sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' >"$work/vault-ca.pem"
OPENSSL_CONF=/dev/null openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout "$work/server.key" -out "$work/run/server.pem" -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -days 1 2>/dev/null
chmod 644 "$work/run/server.pem"
for attempt in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 20000))
  OPENSSL_CONF=/dev/null openssl s_server -accept "127.0.0.1:$port" -naccept 1 -www \
    -cert "$work/run/server.pem" -key "$work/server.key" \
    -CAfile "$work/vault-ca.pem" -Verify 1 -verify_return_error \
    >"$work/s_server.out" 2>"$work/s_server.err" &
  server_pid=$!
  for _ in $(seq 100); do
    grep -q ACCEPT "$work/s_server.out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  grep -q ACCEPT "$work/s_server.out" && break
  server_pid=
done
[ -n "$server_pid" ] || { echo "demo: openssl s_server did not start" >&2; exit 1; }
echo "+ ${client[*]} openssl s_client -provider certvault -provider default -cert certvault:api-prod -key certvault:api-prod ...   (no PIN)" >&2
printf 'GET / HTTP/1.0\r\n\r\n' |
  "${client[@]}" env -i PATH=/usr/bin:/bin CERTVAULT_AGENT_SOCK="$CERTVAULT_AGENT_SOCK" \
    OPENSSL_CONF=/dev/null timeout 60 openssl s_client \
    -provider-path "$work/run/ossl-modules" -provider certvault -provider default \
    -cert certvault:api-prod -key certvault:api-prod \
    -connect "127.0.0.1:$port" -CAfile "$work/run/server.pem" -verify_return_error -ign_eof \
    >"$work/s_client.out" 2>"$work/s_client.err" ||
  { cat "$work/s_client.err" "$work/s_server.err" >&2; echo "demo: the handshake failed" >&2; exit 1; }
wait "$server_pid" 2>/dev/null || true
server_pid=
echo "+ what the server logged:" >&2
cat "$work/s_server.err"
# The -www page is the server's view of the session, client certificate included.
sed -n '/^Client certificate/,/Subject:/p' "$work/s_client.out" | grep -E 'Client certificate|Issuer:|Subject:'
if grep -q 'depth=0 CN = api-prod' "$work/s_server.err" &&
  grep -A1 'depth=0 CN = api-prod' "$work/s_server.err" | grep -q 'verify return:1' &&
  grep -q 'Subject: CN=api-prod' "$work/s_client.out"; then
  echo "demo: the server verified and accepted CN=api-prod, presented by URI by a program with no PIN" >&2
else
  echo "demo: the server did not accept the client certificate" >&2
  exit 1
fi
echo "+ certvault status; certvault audit" >&2
"$build/tools/certvault" status
"$build/tools/certvault" audit --audit-log "$work/audit.log"
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
cv renew-rule api-prod --before 30d
cv renew --dry-run
cv renew api-prod
cv lock
echo "demo: done; the vault was in $work/vault and is now removed" >&2

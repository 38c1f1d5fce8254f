#!/bin/sh
# systemd-analyze verify on the agent's units, the renewal, check and CRL timers and
# services, as installed (ExecStart naming the CLI under test). Any complaint fails the
# test: systemd prints warnings and still exits 0.
set -eu
cli=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/system" "$tmp/user" "$tmp/runtime"
chmod 700 "$tmp/runtime"
for unit in certvault-agent.service certvault-agent.socket; do
  sed "s|/usr/bin/certvault|$cli|" "$src/systemd/$unit" >"$tmp/system/$unit"
  sed "s|/usr/bin/certvault|$cli|" "$src/systemd/user/$unit" >"$tmp/user/$unit"
done
for unit in certvault-renew.service certvault-renew.timer certvault-reload-example.path \
  certvault-reload-example.service certvault-check.service certvault-check.timer \
  certvault-crl.service certvault-crl.timer; do
  sed "s|/usr/bin/certvault|$cli|" "$src/systemd/$unit" >"$tmp/system/$unit"
done
out=$(systemd-analyze verify "$tmp/system/certvault-agent.socket" \
  "$tmp/system/certvault-agent.service" "$tmp/system/certvault-renew.timer" \
  "$tmp/system/certvault-renew.service" "$tmp/system/certvault-reload-example.path" \
  "$tmp/system/certvault-reload-example.service" "$tmp/system/certvault-crl.service" \
  "$tmp/system/certvault-crl.timer" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "system units: $out"; exit 1; }
out=$(systemd-analyze verify "$tmp/system/certvault-check.timer" \
  "$tmp/system/certvault-check.service" 2>&1) || { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "check units: $out"; exit 1; }
out=$(XDG_RUNTIME_DIR="$tmp/runtime" systemd-analyze --user verify \
  "$tmp/user/certvault-agent.socket" "$tmp/user/certvault-agent.service" 2>&1) ||
  { echo "$out"; exit 1; }
[ -z "$out" ] || { echo "user units: $out"; exit 1; }
echo "systemd-analyze verify: the system, user and check units are clean"

#!/usr/bin/env bash
# Where the time of a TLS client's signature through the agent goes (docs/PERFORMANCE.md,
# "Where a TLS handshake's round trip goes"). Not a budget: a diagnosis.
#  1. a Release build of the CLI, certvault.so and bench_provider in BUILD_DIR (default:
#     build);
#  2. a vault with one EC P-256 key (bench-ec), an agent on a temporary socket, unlocked;
#  3. bench_provider's BM_Tls13Handshake/ClientKeyFromAgent (full TLS 1.3 handshakes in one
#     thread, the client's CertificateVerify signed through the agent: one round trip per
#     handshake, about 1 ms apart) for 5 s; after 2 s, `perf record` takes 0.5 s of the
#     system calls of the round trips (sendto, recvfrom, epoll_wait), system-wide;
#  4. bench/agent_timeline.py: each part of the round trip (the client's send to the agent
#     awake, the agent's work, the reply to the client), percentiles in microseconds.
# Environment: AGENT_CPUS, CLIENT_CPUS: run the agent, or the client, under `taskset -c`
# (both 0: one core for both). Needs linux-perf and root (system-wide tracepoints).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${BUILD_DIR:-$root/build}")
command -v perf >/dev/null || { echo "agent-timeline.sh: needs perf (apt-get install linux-perf)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "agent-timeline.sh: run it as root (perf records system-wide tracepoints)" >&2; exit 2; }

echo "== machine"
grep -m1 'model name' /proc/cpuinfo || true
echo "nproc: $(nproc); kernel $(uname -r); date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target certvault certvault-provider bench_provider >/dev/null

cli=$build/tools/certvault
tmp=$(mktemp -d /tmp/certvault-agent-timeline-XXXXXX)
agent_pid=
client_pid=
cleanup() {
  for pid in $client_pid $agent_pid; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-vault.sh
. "$root/scripts/bench-vault.sh"
bench_vault "$cli" "$tmp"
bench_agent "${AGENT_CPUS:-}" >/dev/null
on() { if [ -n "$1" ]; then echo taskset -c "$1"; fi; }

echo "== the client: BM_Tls13Handshake/ClientKeyFromAgent${CLIENT_CPUS:+ on cpus $CLIENT_CPUS}${AGENT_CPUS:+, the agent on cpus $AGENT_CPUS}"
# shellcheck disable=SC2046
CERTVAULT_BENCH_AGENT_URI="certvault:bench-ec?vault=$vault" CERTVAULT_BENCH_AGENT_CA=$tmp/ca.pem \
  $(on "${CLIENT_CPUS:-}") "$build/bench/bench_provider" \
  --benchmark_filter='Tls13Handshake/ClientKeyFromAgent' --benchmark_min_time=5 \
  >"$tmp/client.out" 2>&1 &
client_pid=$!
sleep 2
if ! perf record -q -a -o "$tmp/perf.data" -e syscalls:sys_enter_sendto,syscalls:sys_exit_recvfrom \
  -e syscalls:sys_enter_epoll_wait,syscalls:sys_exit_epoll_wait -- sleep 0.5 >/dev/null 2>"$tmp/perf.err"; then
  echo "agent-timeline.sh: perf record failed:" >&2
  cat "$tmp/perf.err" >&2
  exit 1
fi
if ! wait "$client_pid"; then
  client_pid=
  echo "agent-timeline.sh: the client failed:" >&2
  cat "$tmp/client.out" >&2
  exit 1
fi
client_pid=
grep 'ClientKeyFromAgent' "$tmp/client.out" | tail -1
perf script -i "$tmp/perf.data" -F comm,tid,cpu,time,event,trace 2>/dev/null |
  python3 "$root/bench/agent_timeline.py" bench_provider

#!/usr/bin/env bash
# The agent's budgets in one go (docs/PERFORMANCE.md, "The agent (issue: unlock once)"):
#  1. a Release build of the CLI, certvault.so and the benchmarks in BUILD_DIR (default:
#     build);
#  2. a vault made with the CLI at `init`'s default Argon2id cost, holding one EC P-256
#     key (bench-ec), a PEM key of the same type, and an agent on a temporary socket,
#     unlocked with `certvault unlock`;
#  3. bench_process: one `openssl pkeyutl -sign` process with the agent's key beside the
#     PEM key under the same openssl.cnf (certvault.so loaded), beside the PEM key without
#     certvault.so, and beside the old in-process way (pin-source=file:, Argon2id);
#  4. bench_provider, the agent rows: TLS 1.3 full handshakes with the client key in the
#     agent beside a PEM key, and signatures per second through the agent (informational);
#  5. the agent stopped; bench_pkcs11_agent, which starts an agent of its own on a vault
#     with an EC P-256 and an RSA-2048 key: C_Sign through the agent beside the module
#     in-process on the same keys (two copies of the module in one process), and two
#     client threads through the agent beside one, rotated with raw OpenSSL's own;
#  6. bench_agent_vault, which starts an agent of its own for each round on a 10,000-entry
#     vault and a 1-entry one, at three Argon2id costs (the vaults made in 40-60 s):
#     resident memory after unlock, and the first signature after unlock beyond Argon2id.
# After step 1 and after step 6, bench_machine: what this machine charges for a system call
# and a round trip over a Unix socket, with no certvault code (a host that got busier
# during the run shows there).
# Environment: ROUNDS (bench_process rounds, default 15), REPS (bench_provider and
# bench_pkcs11_agent repetitions, default 5), ENTRIES (default 10000). Takes about six
# minutes on 2 vCPUs.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath -m "${BUILD_DIR:-$root/build}")  # openssl.cnf names the module by it
rounds=${ROUNDS:-15}
reps=${REPS:-5}
entries=${ENTRIES:-10000}

load() { echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"; }

echo "== machine"
echo "nproc: $(nproc)"
grep -m1 'model name' /proc/cpuinfo || true
free -h | awk '/^Mem:/ {print "RAM: " $2}'
g++ --version | head -1
openssl version
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
load

echo "== build (Release) in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target certvault certvault-provider bench_process bench_provider \
  bench_agent_vault bench_pkcs11_agent bench_machine

echo "== the machine's part of a round trip, before"
"$build/bench/bench_machine"

cli=$build/tools/certvault
tmp=$(mktemp -d /tmp/certvault-bench-agent-XXXXXX)
agent_pid=
cleanup() {
  if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null || true; wait "$agent_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
# shellcheck source=scripts/bench-vault.sh
. "$root/scripts/bench-vault.sh"

echo "== a vault (default Argon2id cost), its key bench-ec, a PEM key, openssl.cnf"
bench_vault "$cli" "$tmp"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/key.pem" 2>/dev/null
# certvault.so loaded (default first, as the sample openssl.cnf), and the same without it.
for which in provider plain; do
  {
    echo "openssl_conf = openssl_init"
    echo "[openssl_init]"
    echo "providers = provider_sect"
    echo "[provider_sect]"
    echo "default = default_sect"
    [ "$which" = provider ] && echo "certvault = certvault_sect"
    echo "[default_sect]"
    echo "activate = 1"
    if [ "$which" = provider ]; then
      echo "[certvault_sect]"
      echo "module = $build/provider/certvault.so"
      echo "activate = 1"
    fi
  } >"$tmp/$which.cnf"
done

echo "== agent on $tmp/agent.sock"
bench_agent ""

echo "== bench_process --rounds $rounds"
load
"$build/bench/bench_process" --conf "$tmp/provider.cnf" --plain-conf "$tmp/plain.cnf" \
  --socket "$tmp/agent.sock" --vault "$vault" --pin-file "$tmp/pin" --nickname bench-ec \
  --pem "$tmp/key.pem" --rounds "$rounds"

echo "== bench_provider, the agent rows"
load
CERTVAULT_BENCH_AGENT_URI="certvault:bench-ec?vault=$vault" CERTVAULT_BENCH_AGENT_CA=$tmp/ca.pem \
  "$build/bench/bench_provider" --benchmark_filter='Agent|Tls13HandshakeBeside' \
  --benchmark_repetitions="$reps" --benchmark_display_aggregates_only=true

kill "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
agent_pid=
unset CERTVAULT_AGENT_SOCK

echo "== bench_pkcs11_agent"
load
"$build/bench/bench_pkcs11_agent" --benchmark_repetitions="$reps" \
  --benchmark_display_aggregates_only=true

echo "== bench_agent_vault --entries $entries"
load
"$build/bench/bench_agent_vault" --entries "$entries" --rounds 20
load

echo "== the machine's part of a round trip, after"
"$build/bench/bench_machine"

#!/usr/bin/env bash
# Issue 3's PKCS#11 benchmarks in one go (docs/PERFORMANCE.md, "PKCS#11 module"):
#  1. a Release build of bench/bench_pkcs11 in BUILD_DIR (default: build-bench-rel);
#  2. bench_pkcs11: C_SignInit+C_Sign per second for EC P-256 and RSA-2048, 1 and 2 threads,
#     through certvault and through SoftHSM2 holding the same keys, beside raw OpenSSL on
#     those keys; the signing budgets again side by side (alternating batches, see
#     docs/PERFORMANCE.md); find by label in a 10,000-entry vault; then the budget lines;
#  3. `openssl speed` for the same key types, one process and two (-multi 2).
# Arguments are passed to bench_pkcs11 (e.g. --benchmark_filter=sign/ec); the default is
# five repetitions in random order (so that a busy machine disturbs every variant alike),
# medians shown. The whole run takes about three minutes on 2 vCPUs.
# Needs softhsm2 (softhsm2-util, libsofthsm2.so) and libbenchmark-dev.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench-rel}
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
  args=(--benchmark_repetitions=5 --benchmark_enable_random_interleaving=true
        --benchmark_display_aggregates_only=true
        --benchmark_out="$build/bench_pkcs11.json" --benchmark_out_format=json)
fi

echo "== machine"
echo "nproc: $(nproc)"
lscpu | grep -m1 'Model name' || true
free -h | awk '/^Mem:/ {print "RAM: " $2}'
openssl version
echo "SoftHSM2: $(softhsm2-util --version)"
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "== build (Release) in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCERTVAULT_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target bench_pkcs11

echo "== bench_pkcs11 ${args[*]}"
"$build/bench/bench_pkcs11" "${args[@]}"

echo "== openssl speed -seconds 3 ecdsap256 rsa2048"
openssl speed -seconds 3 ecdsap256 rsa2048 2>/dev/null
echo "== openssl speed -seconds 3 -multi 2 ecdsap256 rsa2048"
openssl speed -seconds 3 -multi 2 ecdsap256 rsa2048 2>/dev/null

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

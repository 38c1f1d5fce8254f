#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/README.md) with clang 19 and runs each for a bounded
# time on a copy of its seed corpus, as many at once as there are cores; fails when one
# finds a crash, a leak or a timeout (an input that runs longer than 10 s).
# CERTVAULT_FUZZ_SECONDS sets the time per target (default 15: eight targets take about a
# minute on 2 cores, after the build).
set -euo pipefail
cd "$(dirname "$0")/.."
# libstdc++ 12's <expected> needs clang 19; Debian 12's default clang (14) cannot compile it.
scripts/install-deps.sh clang-19 libclang-rt-19-dev
jobs=$(nproc)
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++-19 -DCERTVAULT_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs"

seconds=${CERTVAULT_FUZZ_SECONDS:-15}
# Stack traces with file and line when an llvm-symbolizer is installed: the sanitizer
# runtime does not follow Debian's /usr/bin/llvm-symbolizer symlink by itself.
if symbolizer=$(command -v llvm-symbolizer); then
  ASAN_SYMBOLIZER_PATH=$(readlink -f "$symbolizer")
  export ASAN_SYMBOLIZER_PATH UBSAN_SYMBOLIZER_PATH="$ASAN_SYMBOLIZER_PATH"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The targets that need a vault (fuzz/fuzz_vault.h) make it under $TMPDIR: in memory when
# it can be, since an import or a C_CreateObject commits to it.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi

# Runs one target; its report goes to $work/<name>/report, and "failed" into
# $work/<name>/failed when the fuzzer failed.
run_target() {
  local name=$1
  # The fuzzer adds what it finds to its first corpus directory: a copy, so that the
  # checked-in seeds stay as they are.
  mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
  cp -r "fuzz/corpus/$name/." "$work/$name/corpus/"
  if build-fuzz/fuzz/"$name"_fuzz "$work/$name/corpus" -max_total_time="$seconds" -timeout=10 \
    -artifact_prefix="$work/$name/artifacts/" -print_final_stats=1 2>"$work/$name/log"; then
    { echo "== $name: ${seconds}s"
      grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' "$work/$name/log" || true
    } >"$work/$name/report"
    return 0
  fi
  # The report from its first line, which says where, else the end of the log.
  { echo "== $name: FAILED"
    sed -n '/ERROR:\|runtime error:\|ALARM:\|_fuzz: /,$p' "$work/$name/log" | head -n 80 | grep . ||
      tail -n 60 "$work/$name/log"
  } >"$work/$name/report"
  echo failed >"$work/$name/failed"
}

names=()
for source in fuzz/*_fuzz.cc; do names+=("$(basename "$source" _fuzz.cc)"); done
# As many targets at once as there are cores; each one is a single process.
for name in "${names[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_target "$name" &
done
wait
status=0
for name in "${names[@]}"; do
  cat "$work/$name/report"
  if [ -e "$work/$name/failed" ]; then
    status=1
    mkdir -p build-fuzz/crashes
    cp "$work/$name/artifacts/"* build-fuzz/crashes/ 2>/dev/null || true
    echo "$name: the fuzzer failed; its input is in build-fuzz/crashes/" >&2
  fi
done
exit "$status"

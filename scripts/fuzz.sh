#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/README.md) with clang 19 and runs each for a bounded
# time on a copy of its seed corpus; fails when one finds a crash, a leak or a timeout.
# CERTVAULT_FUZZ_SECONDS sets the time per target (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
# libstdc++ 12's <expected> needs clang 19; Debian 12's default clang (14) cannot compile it.
scripts/install-deps.sh clang-19 libclang-rt-19-dev
jobs=$(nproc)
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++-19 -DCERTVAULT_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs"

seconds=${CERTVAULT_FUZZ_SECONDS:-60}
# Stack traces with file and line when an llvm-symbolizer is installed: the sanitizer
# runtime does not follow Debian's /usr/bin/llvm-symbolizer symlink by itself.
if symbolizer=$(command -v llvm-symbolizer); then
  ASAN_SYMBOLIZER_PATH=$(readlink -f "$symbolizer")
  export ASAN_SYMBOLIZER_PATH UBSAN_SYMBOLIZER_PATH="$ASAN_SYMBOLIZER_PATH"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for source in fuzz/*_fuzz.cc; do
  name=$(basename "$source" _fuzz.cc)
  # The fuzzer adds what it finds to its first corpus directory: a copy, so that the
  # checked-in seeds stay as they are.
  mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
  cp -r "fuzz/corpus/$name/." "$work/$name/corpus/"
  echo "== $name: ${seconds}s"
  if ! build-fuzz/fuzz/"$name"_fuzz "$work/$name/corpus" -max_total_time="$seconds" \
    -artifact_prefix="$work/$name/artifacts/" -print_final_stats=1 2>"$work/$name/log"; then
    # The report from its first line, which says where, else the end of the log.
    sed -n '/ERROR:\|runtime error:\|ALARM:/,$p' "$work/$name/log" | head -n 80 | grep . ||
      tail -n 60 "$work/$name/log"
    mkdir -p build-fuzz/crashes
    cp "$work/$name/artifacts/"* build-fuzz/crashes/ 2>/dev/null || true
    echo "$name: the fuzzer failed; its input is in build-fuzz/crashes/" >&2
    status=1
    continue
  fi
  grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added|stat::peak_rss_mb)' "$work/$name/log" || true
done
exit "$status"

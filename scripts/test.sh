#!/usr/bin/env bash
# Installs what is missing, builds (normal and ASan+UBSan, warnings as errors) and runs the
# whole test suite, checks the formatting, runs the fuzz targets briefly (scripts/fuzz.sh),
# builds the Debian packages and tests them installed in a clean Debian 12 chroot
# (scripts/build-package.sh, scripts/test-package.sh), then builds the packages again on
# Debian 13 (OpenSSL 3.5, g++ 14) in a chroot, the whole suite as the build's test step, and
# tests them installed there (scripts/test-debian13.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
# The agent and client tests create users and run programs as them; without root they
# would be skipped, and a green run would hide that they never ran.
if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run it as root (sudo scripts/test.sh): the agent and client tests" \
    "create users and run programs as them" >&2
  exit 2
fi
# Each step's time, for the run's log (CI keeps the whole run under 45 minutes on 2 cores).
step_began=$SECONDS
took() {
  echo "== scripts/test.sh: $1 took $((SECONDS - step_began)) s (whole run so far: ${SECONDS} s)"
  step_began=$SECONDS
}
scripts/install-deps.sh
took "installing what is missing"
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTVAULT_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
# clang-format's verdict, on Debian 12 only (other clang-format versions format differently).
cmake --build build --target format-check
ctest --test-dir build --output-on-failure -j"$jobs"
took "the build and the suite (RelWithDebInfo)"
if [ "${CERTVAULT_SKIP_SANITIZE:-0}" != 1 ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCERTVAULT_SANITIZE=ON -DCERTVAULT_BENCH=OFF \
    -DCERTVAULT_WERROR=ON >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
  took "the build and the suite under ASan+UBSan"
fi
# The libFuzzer targets (clang 19), briefly: CERTVAULT_FUZZ_SECONDS each, 15 by default.
if [ "${CERTVAULT_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh
  took "the fuzz targets"
fi
# The Debian packages, built with Debian's flags (the suite has run above, so nocheck), then
# installed, upgraded, removed and purged in a clean Debian 12 chroot.
if [ "${CERTVAULT_SKIP_PACKAGE:-0}" != 1 ]; then
  DEB_BUILD_OPTIONS=nocheck scripts/build-package.sh
  scripts/test-package.sh build-deb
  took "the Debian 12 packages, built and tested installed"
fi
# The packages built on Debian 13, whose test step runs the same suite against OpenSSL 3.5
# (the provider must hold on 3.2 and later too), then installed there (build-deb13/).
if [ "${CERTVAULT_SKIP_DEBIAN13:-0}" != 1 ]; then
  scripts/test-debian13.sh
  took "Debian 13: the packages and the suite"
fi

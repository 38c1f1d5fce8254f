#!/usr/bin/env bash
# Installs what is missing, checks the formatting, builds the Debian packages with Debian's
# flags (hardening, warnings as errors) running the whole test suite as the build's test
# step, and tests them installed in a clean Debian 12 chroot (scripts/build-package.sh,
# scripts/test-package.sh); builds again under ASan+UBSan (with the benchmarks) and runs the
# suite there; runs the fuzz targets briefly (scripts/fuzz.sh); then builds the packages
# again on Debian 13 (OpenSSL 3.5, g++ 14) in a chroot, the whole suite as the build's test
# step, and tests them installed there (scripts/test-debian13.sh).
# CERTVAULT_SKIP_PACKAGE=1 runs the suite in an ordinary RelWithDebInfo build instead of the
# Debian 12 package build.
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
# clang-format's verdict, on Debian 12 only (other clang-format versions format differently):
# a configured tree is enough, nothing is compiled.
cmake -S . -B build-format >/dev/null
cmake --build build-format --target format-check
# The suite once with Debian's own flags, in the package build that CI needs anyway (one
# build of everything instead of two): debian/rules runs it with ctest, every case its own
# process, in parallel. The packages are then installed, upgraded, removed and purged in a
# clean Debian 12 chroot.
if [ "${CERTVAULT_SKIP_PACKAGE:-0}" != 1 ]; then
  DEB_BUILD_OPTIONS=certvault-werror scripts/build-package.sh
  took "the Debian 12 packages, built with the suite as their test step"
  scripts/test-package.sh build-deb
  took "the Debian 12 packages tested installed"
else
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCERTVAULT_WERROR=ON >/dev/null
  cmake --build build -j"$jobs"
  ctest --test-dir build --output-on-failure -j"$jobs"
  took "the build and the suite (RelWithDebInfo)"
fi
# The benchmarks are built here (and not run): the package builds leave them out.
if [ "${CERTVAULT_SKIP_SANITIZE:-0}" != 1 ]; then
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCERTVAULT_SANITIZE=ON -DCERTVAULT_BENCH=ON \
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
# The packages built on Debian 13, whose test step runs the same suite against OpenSSL 3.5
# (the provider must hold on 3.2 and later too), then installed there (build-deb13/).
if [ "${CERTVAULT_SKIP_DEBIAN13:-0}" != 1 ]; then
  scripts/test-debian13.sh
  took "Debian 13: the packages and the suite"
fi

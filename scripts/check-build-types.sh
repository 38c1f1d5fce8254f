#!/usr/bin/env bash
# Builds certvault with its tests and benchmarks in every build type the project promises to
# build with no warning (-Werror, CERTVAULT_WERROR=ON), with the compiler at hand:
#   Release         -O3
#   RelWithDebInfo  -O2 -g
#   Debug           -O0 -g
#   Debian          the Debian package's own flags: `dpkg-buildflags` with
#                   DEB_BUILD_MAINT_OPTIONS=hardening=+all (PIE, -z,now, fortify, stack
#                   protector), CMAKE_BUILD_TYPE=None as dh_auto_configure sets it.
# It builds only: the suite runs in CI on RelWithDebInfo, under ASan+UBSan and in both
# package builds. CI builds RelWithDebInfo, ASan and the packages every time; this script is
# for the rest, before a release and whenever a compiler changes (Debian 12's g++ 12 on the
# host; Debian 13's g++ 14 in the tree scripts/test-debian13.sh keeps: packaging/README.md).
#
# Usage: scripts/check-build-types.sh [TYPE...]   (default: all four)
# Environment: BUILD_ROOT (default build-types/ in the checkout), JOBS (default nproc).
# Uses ccache when it is installed. Exits non-zero at the first build that fails.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${BUILD_ROOT:-$root/build-types}")
jobs=${JOBS:-$(nproc)}
types=("$@")
[ ${#types[@]} -gt 0 ] || types=(Release RelWithDebInfo Debug Debian)

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache
  -DCMAKE_C_COMPILER_LAUNCHER=ccache)

echo "compiler: $(${CXX:-c++} --version | head -1)"
for type in "${types[@]}"; do
  flags=()
  case $type in
    Release | RelWithDebInfo | Debug) flags=(-DCMAKE_BUILD_TYPE="$type") ;;
    Debian)
      command -v dpkg-buildflags >/dev/null || {
        echo "check-build-types: Debian needs dpkg-buildflags (package dpkg-dev)" >&2
        exit 1
      }
      export DEB_BUILD_MAINT_OPTIONS=hardening=+all
      flags=(-DCMAKE_BUILD_TYPE=None -DCERTVAULT_SYSTEM_PATHS=ON
        "-DCMAKE_CXX_FLAGS=$(dpkg-buildflags --get CXXFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
        "-DCMAKE_C_FLAGS=$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
        "-DCMAKE_EXE_LINKER_FLAGS=$(dpkg-buildflags --get LDFLAGS)"
        "-DCMAKE_SHARED_LINKER_FLAGS=$(dpkg-buildflags --get LDFLAGS)"
        "-DCMAKE_MODULE_LINKER_FLAGS=$(dpkg-buildflags --get LDFLAGS)")
      ;;
    *)
      echo "check-build-types: unknown build type '$type'; use Release, RelWithDebInfo," \
        "Debug or Debian" >&2
      exit 2
      ;;
  esac
  echo "== $type in $out/$type"
  start=$(date +%s)
  cmake -S "$root" -B "$out/$type" -DCERTVAULT_WERROR=ON -DCERTVAULT_TESTS=ON \
    -DCERTVAULT_BENCH=ON "${launcher[@]}" "${flags[@]}" >/dev/null
  cmake --build "$out/$type" -j"$jobs"
  echo "== $type: built with no warning in $(($(date +%s) - start)) s"
done

// What the provider tests share: the `openssl` command line that loads certvault.so with
// one test's vault (no system openssl.cnf involved). Header-only, because the provider's
// path and the sanitizer runtime are compile definitions of each test program.
#pragma once

#include <string>
#include <vector>

#include "support.h"
#include "tls_server.h"

#ifndef CERTVAULT_PROVIDER_DIR
#error "CERTVAULT_PROVIDER_DIR must name the directory of certvault.so"
#endif

namespace cvtest {

using namespace std::chrono_literals;

inline constexpr const char* kProviderDir = CERTVAULT_PROVIDER_DIR;
inline std::string provider_module() {
  return std::string(kProviderDir) + "/certvault.so";
}

// `env` and the variables every program started by a provider test gets: the vault, an
// empty openssl.cnf (unless `openssl_conf` names one), and in a sanitizer build the
// runtime that an uninstrumented program needs to load the instrumented module.
inline std::vector<std::string> provider_env(const fs::path& vault,
                                             const fs::path& openssl_conf = "/dev/null") {
  std::vector<std::string> argv = {"env", "CERTVAULT_VAULT=" + vault.string(),
                                   "OPENSSL_CONF=" + openssl_conf.string()};
#ifdef CERTVAULT_SANITIZER_RUNTIME
  argv.push_back(std::string("LD_PRELOAD=") + CERTVAULT_SANITIZER_RUNTIME);
  argv.push_back("ASAN_OPTIONS=detect_leaks=0");
#endif
  return argv;
}

// The options that load certvault (by name, from the build directory) and default.
inline std::vector<std::string> provider_args() {
  return {"-provider-path", kProviderDir, "-provider", "certvault", "-provider", "default"};
}

}  // namespace cvtest

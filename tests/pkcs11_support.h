// What the PKCS#11 tests share: the environment a PKCS#11 program needs to load the module
// with one test's vault, and RFC 7512 URIs. Header-only, because the module path and the
// sanitizer runtime are compile definitions of each PKCS#11 test program.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "support.h"

#ifndef CERTVAULT_PKCS11_MODULE
#error "CERTVAULT_PKCS11_MODULE must name the module under test"
#endif

namespace cvtest {

inline constexpr const char* kModule = CERTVAULT_PKCS11_MODULE;

// `env` and the variables that make the module show `vault` as its only slot, to put in
// front of a program's argv. A sanitizer build preloads its runtime, as the programs
// themselves are not instrumented.
inline std::vector<std::string> module_env(const fs::path& vault) {
  std::vector<std::string> argv = {"env", "CERTVAULT_VAULT=" + vault.string(),
                                   "CERTVAULT_PKCS11_CONF=/nonexistent"};
#ifdef CERTVAULT_SANITIZER_RUNTIME
  argv.push_back(std::string("LD_PRELOAD=") + CERTVAULT_SANITIZER_RUNTIME);
  argv.push_back("ASAN_OPTIONS=detect_leaks=0");
#endif
  return argv;
}

// A path attribute value of a PKCS#11 URI. RFC 7512 2.3 lets some reserved characters
// through unencoded; encoding everything but the unreserved set is always valid.
inline std::string pkcs11_uri_value(std::string_view value) {
  static const char* digits = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += digits[c >> 4];
      out += digits[c & 15];
    }
  }
  return out;
}

// pkcs11:token=LABEL;object=NICKNAME;type=TYPE
inline std::string pkcs11_uri(std::string_view token, std::string_view object,
                              std::string_view type) {
  return "pkcs11:token=" + pkcs11_uri_value(token) + ";object=" + pkcs11_uri_value(object) +
         ";type=" + std::string(type);
}

}  // namespace cvtest

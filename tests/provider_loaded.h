// The provider loaded in-process, as a libssl application loads it: certvault activated
// first, then default, for a test on a fresh vault (cheap Argon2id) with its PIN in a file.
#pragma once

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include <string>

#include "support.h"
#include "test_vault.h"

#ifndef CERTVAULT_PROVIDER_DIR
#error "CERTVAULT_PROVIDER_DIR must name the directory of certvault.so"
#endif

namespace cvtest {

// Every queued OpenSSL error with its text, oldest first, one per line; empties the queue.
inline std::string errors() {
  std::string out;
  unsigned long e;
  char buf[512];
  const char* data = nullptr;
  int flags = 0;
  while ((e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
    ERR_error_string_n(e, buf, sizeof buf);
    out += buf;
    if (data && (flags & ERR_TXT_STRING)) out += std::string(":") + data;
    out += "\n";
  }
  return out;
}

class ProviderLoadedTest : public VaultTest {
 protected:
  // The providers in the default library context, as most applications have them.
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    load_providers(nullptr);
  }

  // Loads certvault, then default, into `libctx` (nullptr: the default library context).
  void load_providers(OSSL_LIB_CTX* libctx) {
    ERR_clear_error();
    ASSERT_EQ(OSSL_PROVIDER_set_default_search_path(libctx, CERTVAULT_PROVIDER_DIR), 1);
    certvault_ = OSSL_PROVIDER_load(libctx, "certvault");
    ASSERT_NE(certvault_, nullptr) << errors();
    default_ = OSSL_PROVIDER_load(libctx, "default");
    ASSERT_NE(default_, nullptr) << errors();
    pin_file_ = write_secret_file(tmp_ / "pin", kPin);
  }

  void TearDown() override {
    if (default_) OSSL_PROVIDER_unload(default_);
    if (certvault_) OSSL_PROVIDER_unload(certvault_);
  }

  fs::path pin_file_;
  OSSL_PROVIDER* certvault_ = nullptr;
  OSSL_PROVIDER* default_ = nullptr;
};

}  // namespace cvtest

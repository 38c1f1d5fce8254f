// What every part of the provider shares: the provider context (core upcalls, the
// configuration from openssl.cnf, the vault registry) and the algorithm tables each
// operation file defines.
#pragma once

#include <openssl/core.h>
#include <openssl/core_dispatch.h>

#include <filesystem>
#include <memory>
#include <string>

namespace certvault::provider {

class Vaults;

// The core's functions this provider calls back into (from OSSL_provider_init's `in`).
struct Core {
  OSSL_FUNC_core_get_params_fn* get_params = nullptr;
  OSSL_FUNC_core_new_error_fn* new_error = nullptr;
  OSSL_FUNC_core_set_error_debug_fn* set_error_debug = nullptr;
  OSSL_FUNC_core_vset_error_fn* vset_error = nullptr;
  OSSL_FUNC_BIO_read_ex_fn* bio_read_ex = nullptr;
  OSSL_FUNC_BIO_write_ex_fn* bio_write_ex = nullptr;
};

// One per provider activation (OpenSSL activates a provider once per library context).
struct ProvCtx {
  const OSSL_CORE_HANDLE* handle = nullptr;
  Core core;
  std::filesystem::path vault;  // `vault = DIR` in the provider section; empty: default
  std::string pin_source;       // `pin-source = file:PATH`; empty: none
  std::string agent_socket;     // `agent-socket = PATH`; empty: the default places
  std::unique_ptr<Vaults> vaults;
  ~ProvCtx();
};

// Algorithm tables (store.cc, keymgmt.cc, signature.cc, decoder.cc, encoder.cc).
extern const OSSL_ALGORITHM kStoreAlgorithms[];
extern const OSSL_ALGORITHM kKeymgmtAlgorithms[];
extern const OSSL_ALGORITHM kSignatureAlgorithms[];
extern const OSSL_ALGORITHM kDecoderAlgorithms[];
extern const OSSL_ALGORITHM kEncoderAlgorithms[];

// The property every algorithm carries, so that a caller may ask for this provider.
#define CV_PROPS "provider=certvault"

}  // namespace certvault::provider

// The provider's URI-in-PEM decoder (provider/decoder.cc) under libFuzzer, the way
// PEM_read_bio_PrivateKey() and SSL_CTX_use_PrivateKey_file() reach it: the provider's
// sources are linked in and registered as a built-in provider of a library context of
// its own, and the input is decoded as a PEM private key by that provider's decoders
// (PEM -> certvault URI -> key). The URI may name an entry of the fixture vault, which is
// then unlocked through the passphrase callback with the fixture PIN; a key that decodes
// must be the entry's.
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "check.h"
#include "fuzz_vault.h"

extern "C" int OSSL_provider_init(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in,
                                  const OSSL_DISPATCH** out, void** provctx);

namespace {

using namespace certvault;

void check(bool ok, const char* what) {
  fuzz::check(ok, "uri_pem_fuzz", what);
}

OSSL_LIB_CTX* g_libctx = nullptr;

int give_pin(char* buf, size_t size, size_t* len, const OSSL_PARAM[], void*) {
  if (size < fuzz::kPin.size()) return 0;
  std::memcpy(buf, fuzz::kPin.data(), fuzz::kPin.size());
  *len = fuzz::kPin.size();
  return 1;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)fuzz::fixture_vault();
  g_libctx = OSSL_LIB_CTX_new();
  if (!g_libctx || !OSSL_PROVIDER_add_builtin(g_libctx, "certvault", OSSL_provider_init) ||
      !OSSL_PROVIDER_load(g_libctx, "certvault") || !OSSL_PROVIDER_load(g_libctx, "default"))
    fuzz::setup_failed("cannot load the certvault provider");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  EVP_PKEY* pkey = nullptr;
  OSSL_DECODER_CTX* dctx = OSSL_DECODER_CTX_new_for_pkey(
      &pkey, "PEM", nullptr, nullptr, EVP_PKEY_KEYPAIR, g_libctx, "provider=certvault");
  check(dctx != nullptr, "no decoder for PEM keys");
  OSSL_DECODER_CTX_set_passphrase_cb(dctx, give_pin, nullptr);
  const unsigned char* in = data;
  size_t left = size;
  if (OSSL_DECODER_from_data(dctx, &in, &left)) {
    check(pkey != nullptr, "a decoded URI-in-PEM file gave no key");
    const int id = EVP_PKEY_get_base_id(pkey);
    check(EVP_PKEY_is_a(pkey, "EC") || EVP_PKEY_is_a(pkey, "ED25519") || id == EVP_PKEY_NONE,
          "a key of a type the fixture vault does not hold");
  }
  EVP_PKEY_free(pkey);
  OSSL_DECODER_CTX_free(dctx);
  ERR_clear_error();
  return 0;
}

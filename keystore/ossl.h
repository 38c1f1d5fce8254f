// OpenSSL objects in RAII holders, the keystore's own library context, and error text.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"

namespace certvault::ossl {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
template <typename T, void (*F)(T*)>
using Ptr = std::unique_ptr<T, Deleter<T, F>>;

using Pkey = Ptr<EVP_PKEY, EVP_PKEY_free>;
using PkeyCtx = Ptr<EVP_PKEY_CTX, EVP_PKEY_CTX_free>;
using MdCtx = Ptr<EVP_MD_CTX, EVP_MD_CTX_free>;
using Md = Ptr<EVP_MD, EVP_MD_free>;
using Cert = Ptr<X509, X509_free>;
using Req = Ptr<X509_REQ, X509_REQ_free>;
using Name = Ptr<X509_NAME, X509_NAME_free>;
using Ext = Ptr<X509_EXTENSION, X509_EXTENSION_free>;
using Bio = Ptr<BIO, BIO_free_all>;
using Bn = Ptr<BIGNUM, BN_free>;
using P12 = Ptr<PKCS12, PKCS12_free>;
inline void free_cert_stack(STACK_OF(X509) * s) {
  sk_X509_pop_free(s, X509_free);
}
using CertStack = Ptr<STACK_OF(X509), free_cert_stack>;

using Bytes = std::vector<uint8_t>;

// A private library context with the default provider, so the keystore behaves the same
// inside programs that load other providers (certvault's own included).
OSSL_LIB_CTX* libctx();
// A digest of that context by name ("sha256", "SHA2-256"), fetched once and kept until
// release_libctx(); null when unknown.
const EVP_MD* digest(std::string_view name);
// Frees that context; the next libctx() makes a new one. Nothing may use it meanwhile: a
// module calls this when it is finalised.
void release_libctx();
// For programs (not loadable modules): free that context when OpenSSL cleans up at exit.
void free_at_exit();

// The reason of the newest queued OpenSSL error, for an error sentence. Leaves the queue
// as it is: what came before may be the host application's.
std::string last_error();
// Fails with kCrypto and "<what>: <openssl reason>".
std::unexpected<Error> crypto_fail(std::string_view what);

// The DER encoding of any ASN.1 value OpenSSL can encode; empty when it cannot.
template <typename T, int (*I2D)(const T*, unsigned char**)>
Bytes to_der(const T* value) {
  int n = I2D(value, nullptr);
  if (n <= 0) return {};
  Bytes out(static_cast<size_t>(n));
  unsigned char* p = out.data();
  I2D(value, &p);
  return out;
}
Bytes cert_der(X509* cert);
Result<Cert> cert_from_der(std::span<const uint8_t> der);
std::string cert_pem(X509* cert);
// Whatever `write` puts into a memory BIO, as a string.
std::string to_text(const std::function<void(BIO*)>& write);
Bytes spki_der(EVP_PKEY* pkey);
Result<Pkey> public_from_spki(std::span<const uint8_t> der);

}  // namespace certvault::ossl

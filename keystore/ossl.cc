#include "ossl.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/provider.h>

#include <atomic>
#include <map>
#include <mutex>

namespace certvault::ossl {

namespace {
std::mutex g_ctx_mu;
std::atomic<OSSL_LIB_CTX*> g_ctx{nullptr};
OSSL_PROVIDER* g_default = nullptr;
}  // namespace

OSSL_LIB_CTX* libctx() {
  if (OSSL_LIB_CTX* c = g_ctx.load(std::memory_order_acquire)) return c;
  std::lock_guard lock(g_ctx_mu);
  if (OSSL_LIB_CTX* c = g_ctx.load(std::memory_order_relaxed)) return c;
  OSSL_LIB_CTX* c = OSSL_LIB_CTX_new();
  OSSL_PROVIDER* p = c ? OSSL_PROVIDER_load(c, "default") : nullptr;
  if (!p) {
    OSSL_LIB_CTX_free(c);
    return nullptr;
  }
  g_default = p;
  g_ctx.store(c, std::memory_order_release);
  return c;
}

namespace {
// Digests fetched from the context, kept while it lives (fetching costs more than hashing
// what is signed). Guarded by g_digests_mu; freed before the context is. Made on the heap,
// not a static with a destructor: the provider releases the context from OpenSSL's own
// cleanup at exit, which runs after the statics of a module loaded later are destroyed.
std::mutex g_digests_mu;
std::map<std::string, Md, std::less<>>* g_digests = nullptr;
}  // namespace

const EVP_MD* digest(std::string_view name) {
  OSSL_LIB_CTX* c = libctx();
  if (!c) return nullptr;
  std::lock_guard lock(g_digests_mu);
  if (!g_digests) g_digests = new std::map<std::string, Md, std::less<>>;
  auto it = g_digests->find(name);
  if (it == g_digests->end()) {
    Md md(EVP_MD_fetch(c, std::string(name).c_str(), nullptr));
    if (!md) return nullptr;
    it = g_digests->emplace(std::string(name), std::move(md)).first;
  }
  return it->second.get();
}

void release_libctx() {
  {
    std::lock_guard lock(g_digests_mu);
    delete g_digests;
    g_digests = nullptr;
  }
  std::lock_guard lock(g_ctx_mu);
  OSSL_LIB_CTX* c = g_ctx.exchange(nullptr);
  if (!c) return;
  OSSL_PROVIDER_unload(g_default);
  OSSL_LIB_CTX_free(c);
  g_default = nullptr;
}

void free_at_exit() {
  static std::once_flag once;
  // Freed within OpenSSL's own cleanup, before the default context it depends on. Only a
  // program may ask for this: a module can be unloaded before that cleanup runs.
  std::call_once(once, [] { OPENSSL_atexit(release_libctx); });
}

// The most recent error is the failed call's own; everything queued before it may be the
// application's (a provider or module runs inside someone else's program), so the queue
// is only read, never cleared.
std::string last_error() {
  const unsigned long e = ERR_peek_last_error();
  if (!e) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "error " + std::to_string(ERR_GET_REASON(e));
}

std::unexpected<Error> crypto_fail(std::string_view what) {
  return fail(Code::kCrypto, std::string(what) + ": " + last_error());
}

Bytes cert_der(X509* cert) {
  return to_der<X509, i2d_X509>(cert);
}

Result<Cert> cert_from_der(std::span<const uint8_t> der) {
  Cert cert(X509_new_ex(libctx(), nullptr));
  const unsigned char* p = der.data();
  X509* raw = cert.get();
  if (!cert || !d2i_X509(&raw, &p, static_cast<long>(der.size())) || p != der.data() + der.size()) {
    ERR_clear_error();
    return fail(Code::kInvalidInput, "not a DER X.509 certificate");
  }
  return cert;
}

std::string to_text(const std::function<void(BIO*)>& write) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio) return {};
  write(bio.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

std::string cert_pem(X509* cert) {
  return to_text([&](BIO* b) { PEM_write_bio_X509(b, cert); });
}

Bytes spki_der(EVP_PKEY* pkey) {
  int n = i2d_PUBKEY(pkey, nullptr);
  if (n <= 0) return {};
  Bytes out(static_cast<size_t>(n));
  unsigned char* p = out.data();
  i2d_PUBKEY(pkey, &p);
  return out;
}

Result<Pkey> public_from_spki(std::span<const uint8_t> der) {
  const unsigned char* p = der.data();
  Pkey key(d2i_PUBKEY_ex(nullptr, &p, static_cast<long>(der.size()), libctx(), nullptr));
  if (!key) {
    ERR_clear_error();
    return fail(Code::kTampered, "stored public key is not a valid SubjectPublicKeyInfo");
  }
  return key;
}

}  // namespace certvault::ossl

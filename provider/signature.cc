// SIGNATURE for RSA (PKCS#1 v1.5 and PSS), ECDSA and Ed25519 (provider-signature(7)).
// Each context drives an ordinary EVP context in the keystore's library context, on the
// vault key itself, so the default provider there does the arithmetic and the caller's
// parameters (digest, padding, salt length, MGF1 digest) reach it unchanged. Nothing
// here recurses into the caller's library context, and no lock is held while signing.
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rsa.h>

#include <cstring>
#include <memory>
#include <span>
#include <string>

#include "errors.h"
#include "key.h"
#include "ossl.h"
#include "provider.h"

namespace certvault::provider {
namespace {

struct SigCtx {
  const ProvCtx* prov = nullptr;
  Algo algo = Algo::kEc;
  SharedPkey key;      // the key the operation runs on (private to sign)
  std::string name;    // for messages
  ossl::PkeyCtx pctx;  // sign / verify
  ossl::MdCtx md;      // digest-sign / digest-verify
  // Signing with a key the agent holds: `pctx` is a verification context on the public key
  // that keeps the caller's parameters, `hash` digests the message here, and the agent
  // signs the digest.
  std::shared_ptr<const agent::RemoteKey> remote;
  ossl::MdCtx hash;
  EVP_PKEY_CTX* inner() const { return md ? EVP_MD_CTX_get_pkey_ctx(md.get()) : pctx.get(); }
};

template <Algo A>
void* sig_new(void* provctx, const char*) {
  return guarded<void*>(nullptr, nullptr, [&]() -> void* {
    auto* c = new SigCtx;
    c->prov = static_cast<const ProvCtx*>(provctx);
    c->algo = A;
    return c;
  });
}

void sig_free(void* ctx) {
  delete static_cast<SigCtx*>(ctx);
}

void* sig_dup(void* ctx) {
  return guarded<void*>(nullptr, nullptr, [&]() -> void* {
    const auto* from = static_cast<const SigCtx*>(ctx);
    auto to = std::make_unique<SigCtx>();
    to->prov = from->prov;
    to->algo = from->algo;
    to->key = from->key;
    to->name = from->name;
    to->remote = from->remote;
    if (from->hash) {
      to->hash.reset(EVP_MD_CTX_new());
      if (!to->hash || !EVP_MD_CTX_copy_ex(to->hash.get(), from->hash.get())) return nullptr;
    }
    if (from->pctx) {
      to->pctx.reset(EVP_PKEY_CTX_dup(from->pctx.get()));
      if (!to->pctx) return nullptr;
    }
    if (from->md) {
      to->md.reset(EVP_MD_CTX_new());
      if (!to->md || !EVP_MD_CTX_copy_ex(to->md.get(), from->md.get())) return nullptr;
    }
    return to.release();
  });
}

// Chooses the key for an operation: its private half to sign, its public half to verify.
bool take_key(SigCtx* c, void* provkey, bool sign) {
  auto* k = static_cast<KeyData*>(provkey);
  if (!k || k->algo != c->algo) {
    CV_RAISE(c->prov, kKeyOperation, "the key is not of this signature algorithm's type");
    return false;
  }
  c->name = k->name;
  c->remote = sign ? k->remote : nullptr;
  c->key = sign && !k->remote ? k->priv : k->pub;
  c->hash.reset();
  if (!c->key) {
    CV_RAISE(c->prov, kKeyOperation,
             sign ? "a public key cannot sign; load the private key (certvault:NICKNAME with "
                    "a PIN source)"
                  : "the key has no public half");
    return false;
  }
  c->pctx.reset();
  c->md.reset();
  return true;
}

// The inner call failed: its reason, after ours.
int key_failure(const SigCtx* c, const char* what) {
  const std::string reason = ossl::last_error();
  CV_RAISE(c->prov, kKeyOperation,
           std::string(what) + (c->name.empty() ? "" : " with " + c->name) + ": " + reason);
  return 0;
}

// Hands a signature to OpenSSL's caller: `produce(sig, &len)` is the inner EVP call; a
// null `sig` asks for the size, else at most `sigsize` bytes are written. The length goes
// to *siglen.
template <class Produce>
int give_signature(const SigCtx* c, unsigned char* sig, size_t* siglen, size_t sigsize,
                   Produce produce) {
  size_t len = sig ? sigsize : 0;
  if (produce(sig, &len) <= 0) return key_failure(c, "signing");
  *siglen = len;
  return 1;
}

// The agent's signing parameters for what the caller set on the context.
Result<SignParams> remote_params(const SigCtx* c) {
  SignParams p;
  p.mechanism = c->algo == Algo::kEc        ? SignMechanism::kEcdsa
                : c->algo == Algo::kEd25519 ? SignMechanism::kEd25519
                                            : SignMechanism::kRsaPkcs1;
  if (c->algo == Algo::kEd25519 || !c->pctx) return p;
  char digest[64] = "", mgf1[64] = "";
  int pad = 0, salt = 0;
  OSSL_PARAM ask[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, digest, sizeof digest),
      OSSL_PARAM_construct_end(), OSSL_PARAM_construct_end(), OSSL_PARAM_construct_end(),
      OSSL_PARAM_construct_end()};
  if (c->algo == Algo::kRsa) {
    ask[1] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PAD_MODE, &pad);
  }
  if (EVP_PKEY_CTX_get_params(c->pctx.get(), ask) <= 0)
    return fail(Code::kCrypto, "cannot read the signature parameters");
  if (*digest) {
    p.digest = agent::canonical_digest(digest);
    if (p.digest.empty())
      return fail(Code::kInvalidInput,
                  std::string("the agent does not sign with digest ") + digest);
  }
  if (c->algo == Algo::kRsa && pad == RSA_PKCS1_PSS_PADDING) {
    p.mechanism = SignMechanism::kRsaPss;
    OSSL_PARAM pss[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, mgf1, sizeof mgf1),
        OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &salt),
        OSSL_PARAM_construct_end()};
    if (EVP_PKEY_CTX_get_params(c->pctx.get(), pss) <= 0)
      return fail(Code::kCrypto, "cannot read the RSA-PSS parameters");
    p.mgf1_digest = agent::canonical_digest(mgf1);
    if (salt >= 0) {
      p.salt_length = salt;
    } else if (salt != RSA_PSS_SALTLEN_DIGEST && !p.digest.empty()) {
      // "max" and "auto" sign with the longest salt that fits (RFC 8017 9.1.1).
      ossl::Md md(EVP_MD_fetch(ossl::libctx(), p.digest.c_str(), nullptr));
      const int em_len = (EVP_PKEY_get_bits(c->key.get()) - 1 + 7) / 8;
      p.salt_length = md ? em_len - EVP_MD_get_size(md.get()) - 2 : -1;
    }
  }
  return p;
}

// A signature from the agent, handed over as give_signature() does.
int remote_signature(const SigCtx* c, unsigned char* sig, size_t* siglen, size_t sigsize,
                     std::span<const uint8_t> data) {
  const size_t max = static_cast<size_t>(EVP_PKEY_get_size(c->key.get()));
  if (!sig) {
    *siglen = max;
    return 1;
  }
  auto params = remote_params(c);
  if (!params) {
    CV_RAISE(c->prov, params.error());
    return 0;
  }
  auto got = c->remote->sign(*params, data);
  if (!got) {
    CV_RAISE(c->prov, kKeyOperation, got.error().message);
    return 0;
  }
  if (got->size() > sigsize) {
    CV_RAISE(c->prov, kKeyOperation, "the signature buffer is too small");
    return 0;
  }
  std::memcpy(sig, got->data(), got->size());
  *siglen = got->size();
  return 1;
}

int sig_sign_init(void* ctx, void* provkey, const OSSL_PARAM params[]) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    if (!take_key(c, provkey, true)) return 0;
    if (c->remote) {
      c->pctx.reset(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), c->key.get(), nullptr));
      if (!c->pctx || EVP_PKEY_verify_init_ex(c->pctx.get(), params) <= 0)
        return key_failure(c, "starting a signature");
      return 1;
    }
    c->pctx.reset(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), c->key.get(), nullptr));
    if (!c->pctx || EVP_PKEY_sign_init_ex(c->pctx.get(), params) <= 0)
      return key_failure(c, "starting a signature");
    return 1;
  });
}

int sig_verify_init(void* ctx, void* provkey, const OSSL_PARAM params[]) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    if (!take_key(c, provkey, false)) return 0;
    c->pctx.reset(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), c->key.get(), nullptr));
    if (!c->pctx || EVP_PKEY_verify_init_ex(c->pctx.get(), params) <= 0)
      return key_failure(c, "starting a verification");
    return 1;
  });
}

int sig_sign(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize,
             const unsigned char* tbs, size_t tbslen) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    if (!c->pctx) return 0;
    if (c->remote) return remote_signature(c, sig, siglen, sigsize, {tbs, tbslen});
    return give_signature(c, sig, siglen, sigsize, [&](unsigned char* out, size_t* len) {
      return EVP_PKEY_sign(c->pctx.get(), out, len, tbs, tbslen);
    });
  });
}

int sig_verify(void* ctx, const unsigned char* sig, size_t siglen, const unsigned char* tbs,
               size_t tbslen) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    if (!c->pctx) return 0;
    ERR_set_mark();
    int ok = EVP_PKEY_verify(c->pctx.get(), sig, siglen, tbs, tbslen);
    ERR_pop_to_mark();
    return ok == 1 ? 1 : 0;
  });
}

// A digest-sign context for a vault key, copied from its prototype for `mdname` (made on
// first use); null when there is none to copy.
ossl::MdCtx from_prototype(const KeyData* k, const char* mdname) {
  if (!k->prototypes || !k->priv) return nullptr;
  const std::string digest = mdname ? mdname : "";
  std::lock_guard lock(k->prototypes->mu);
  auto it = k->prototypes->by_digest.find(digest);
  if (it == k->prototypes->by_digest.end()) {
    ossl::MdCtx proto(EVP_MD_CTX_new());
    ERR_set_mark();
    const bool made = proto && EVP_DigestSignInit_ex(proto.get(), nullptr, mdname, ossl::libctx(),
                                                     nullptr, k->priv.get(), nullptr) > 0;
    ERR_pop_to_mark();
    if (!made) return nullptr;
    it = k->prototypes->by_digest
             .emplace(digest, std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)>(proto.release(),
                                                                                 EVP_MD_CTX_free))
             .first;
  }
  ossl::MdCtx copy(EVP_MD_CTX_new());
  if (!copy || !EVP_MD_CTX_copy_ex(copy.get(), it->second.get())) return nullptr;
  return copy;
}

int digest_init(SigCtx* c, const char* mdname, void* provkey, const OSSL_PARAM params[],
                bool sign) {
  if (!take_key(c, provkey, sign)) return 0;
  if (mdname && !*mdname) mdname = nullptr;
  if (c->remote) {
    // Ed25519 signs the message itself; the others a digest made here.
    if (c->algo == Algo::kEd25519) return 1;
    ossl::Md md(EVP_MD_fetch(ossl::libctx(), mdname ? mdname : "SHA256", nullptr));
    c->pctx.reset(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), c->key.get(), nullptr));
    c->hash.reset(EVP_MD_CTX_new());
    if (!md || !c->pctx || !c->hash || EVP_PKEY_verify_init_ex(c->pctx.get(), nullptr) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(c->pctx.get(), md.get()) <= 0 ||
        (params && params[0].key && EVP_PKEY_CTX_set_params(c->pctx.get(), params) <= 0) ||
        EVP_DigestInit_ex2(c->hash.get(), md.get(), nullptr) <= 0) {
      c->hash.reset();
      return key_failure(c, "starting a signature");
    }
    return 1;
  }
  const bool plain = !params || !params[0].key;
  // Ed25519 signs the message itself (one-shot); its context is not copied.
  if (sign && plain && c->algo != Algo::kEd25519) {
    c->md = from_prototype(static_cast<const KeyData*>(provkey), mdname);
    if (c->md) return 1;
  }
  c->md.reset(EVP_MD_CTX_new());
  int ok = c->md ? (sign ? EVP_DigestSignInit_ex(c->md.get(), nullptr, mdname, ossl::libctx(),
                                                 nullptr, c->key.get(), params)
                         : EVP_DigestVerifyInit_ex(c->md.get(), nullptr, mdname, ossl::libctx(),
                                                   nullptr, c->key.get(), params))
                 : 0;
  if (ok <= 0) {
    c->md.reset();
    return key_failure(c, sign ? "starting a signature" : "starting a verification");
  }
  return 1;
}

int sig_digest_sign_init(void* ctx, const char* mdname, void* provkey, const OSSL_PARAM params[]) {
  auto* c = static_cast<SigCtx*>(ctx);
  return guarded(c->prov, 0, [&] { return digest_init(c, mdname, provkey, params, true); });
}

int sig_digest_verify_init(void* ctx, const char* mdname, void* provkey,
                           const OSSL_PARAM params[]) {
  auto* c = static_cast<SigCtx*>(ctx);
  return guarded(c->prov, 0, [&] { return digest_init(c, mdname, provkey, params, false); });
}

int sig_digest_sign_update(void* ctx, const unsigned char* data, size_t len) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (c->remote) return c->hash && EVP_DigestUpdate(c->hash.get(), data, len) > 0;
  return c->md && EVP_DigestSignUpdate(c->md.get(), data, len) > 0;
}

int sig_digest_verify_update(void* ctx, const unsigned char* data, size_t len) {
  auto* c = static_cast<SigCtx*>(ctx);
  return c->md && EVP_DigestVerifyUpdate(c->md.get(), data, len) > 0;
}

int sig_digest_sign_final(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    if (c->remote) {
      if (!c->hash) return 0;
      if (!sig) return remote_signature(c, sig, siglen, sigsize, {});
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (EVP_DigestFinal_ex(c->hash.get(), digest, &len) <= 0) return 0;
      return remote_signature(c, sig, siglen, sigsize, {digest, len});
    }
    if (!c->md) return 0;
    return give_signature(c, sig, siglen, sigsize, [&](unsigned char* out, size_t* len) {
      return EVP_DigestSignFinal(c->md.get(), out, len);
    });
  });
}

int sig_digest_verify_final(void* ctx, const unsigned char* sig, size_t siglen) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (!c->md) return 0;
  ERR_set_mark();
  int ok = EVP_DigestVerifyFinal(c->md.get(), sig, siglen);
  ERR_pop_to_mark();
  return ok == 1 ? 1 : 0;
}

int sig_digest_sign(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize,
                    const unsigned char* tbs, size_t tbslen) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    if (c->remote) {
      if (c->algo == Algo::kEd25519 || !sig)
        return remote_signature(c, sig, siglen, sigsize, {tbs, tbslen});
      if (!c->hash) return 0;
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (EVP_DigestUpdate(c->hash.get(), tbs, tbslen) <= 0 ||
          EVP_DigestFinal_ex(c->hash.get(), digest, &len) <= 0)
        return 0;
      return remote_signature(c, sig, siglen, sigsize, {digest, len});
    }
    if (!c->md) return 0;
    return give_signature(c, sig, siglen, sigsize, [&](unsigned char* out, size_t* len) {
      return EVP_DigestSign(c->md.get(), out, len, tbs, tbslen);
    });
  });
}

int sig_digest_verify(void* ctx, const unsigned char* sig, size_t siglen, const unsigned char* tbs,
                      size_t tbslen) {
  auto* c = static_cast<SigCtx*>(ctx);
  if (!c->md) return 0;
  ERR_set_mark();
  int ok = EVP_DigestVerify(c->md.get(), sig, siglen, tbs, tbslen);
  ERR_pop_to_mark();
  return ok == 1 ? 1 : 0;
}

int sig_get_ctx_params(void* ctx, OSSL_PARAM params[]) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    EVP_PKEY_CTX* inner = c ? c->inner() : nullptr;
    return inner && EVP_PKEY_CTX_get_params(inner, params) > 0 ? 1 : 0;
  });
}

int sig_set_ctx_params(void* ctx, const OSSL_PARAM params[]) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    if (!c) return 0;
    if (!params || !params[0].key) return 1;
    EVP_PKEY_CTX* inner = c->inner();
    if (!inner) return 1;
    if (EVP_PKEY_CTX_set_params(inner, params) <= 0)
      return key_failure(c, "setting signature parameters");
    return 1;
  });
}

template <Algo A>
const OSSL_PARAM* sig_gettable_ctx_params(void*, void*) {
  static const OSSL_PARAM kRsa[] = {
      OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kEc[] = {
      OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0),
      OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, nullptr),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0), OSSL_PARAM_END};
  static const OSSL_PARAM kEd[] = {
      OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0), OSSL_PARAM_END};
  return A == Algo::kRsa ? kRsa : A == Algo::kEc ? kEc : kEd;
}

template <Algo A>
const OSSL_PARAM* sig_settable_ctx_params(void*, void*) {
  // PSS: pad-mode and saltlen come as integers or as strings ("pss", "digest", "max",
  // "auto"); the default provider behind us takes both.
  static const OSSL_PARAM kRsa[] = {
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_PROPERTIES, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kEc[] = {
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PROPERTIES, nullptr, 0),
      OSSL_PARAM_size_t(OSSL_SIGNATURE_PARAM_DIGEST_SIZE, nullptr), OSSL_PARAM_END};
  static const OSSL_PARAM kEd[] = {OSSL_PARAM_END};
  return A == Algo::kRsa ? kRsa : A == Algo::kEc ? kEc : kEd;
}

template <Algo A>
const OSSL_DISPATCH kFunctions[] = {
    FN(OSSL_FUNC_SIGNATURE_NEWCTX, sig_new<A>),
    FN(OSSL_FUNC_SIGNATURE_FREECTX, sig_free),
    FN(OSSL_FUNC_SIGNATURE_DUPCTX, sig_dup),
    FN(OSSL_FUNC_SIGNATURE_SIGN_INIT, sig_sign_init),
    FN(OSSL_FUNC_SIGNATURE_SIGN, sig_sign),
    FN(OSSL_FUNC_SIGNATURE_VERIFY_INIT, sig_verify_init),
    FN(OSSL_FUNC_SIGNATURE_VERIFY, sig_verify),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, sig_digest_sign_init),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, sig_digest_sign_update),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, sig_digest_sign_final),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_SIGN, sig_digest_sign),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_INIT, sig_digest_verify_init),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_UPDATE, sig_digest_verify_update),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_VERIFY_FINAL, sig_digest_verify_final),
    FN(OSSL_FUNC_SIGNATURE_DIGEST_VERIFY, sig_digest_verify),
    FN(OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, sig_get_ctx_params),
    FN(OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, sig_gettable_ctx_params<A>),
    FN(OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, sig_set_ctx_params),
    FN(OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, sig_settable_ctx_params<A>),
    {0, nullptr}};

}  // namespace

const OSSL_ALGORITHM kSignatureAlgorithms[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", CV_PROPS, kFunctions<Algo::kRsa>,
     "certvault RSA signatures (PKCS#1 v1.5, PSS)"},
    {"ECDSA", CV_PROPS, kFunctions<Algo::kEc>, "certvault ECDSA"},
    {"ED25519:1.3.101.112", CV_PROPS, kFunctions<Algo::kEd25519>, "certvault Ed25519"},
    {nullptr, nullptr, nullptr, nullptr}};

}  // namespace certvault::provider

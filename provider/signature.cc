// SIGNATURE for RSA (PKCS#1 v1.5 and PSS), ECDSA and Ed25519 (provider-signature(7)).
// A vault key signs one way, wherever it is held: through the keystore's KeyHandle
// (SigningKey in this process, RemoteKey in the agent). A verification context on its
// public key keeps the caller's parameters (digest, padding, salt length, MGF1 digest)
// and answers for them (algorithm-id), the message is hashed here, and the handle signs
// the digest (Ed25519: the message), as the PKCS#11 module does. Verification, and
// signing with an ordinary key a caller made through this provider's KEYMGMT, run an
// ordinary EVP context on the key. Everything runs in the keystore's library context, so
// nothing here recurses into the caller's, and no lock is held while signing.
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

#include "agent_key.h"
#include "errors.h"
#include "key.h"
#include "ossl.h"
#include "provider.h"

namespace certvault::provider {
namespace {

struct SigCtx {
  const ProvCtx* prov = nullptr;
  Algo algo = Algo::kEc;
  SharedPkey key;      // what the EVP contexts run on: a vault key's public half, else the key
  std::string name;    // for messages
  ossl::PkeyCtx pctx;  // sign / verify
  ossl::MdCtx md;      // digest-sign / digest-verify
  // Signing with a vault key: `pctx` or `md` is a verification context that keeps the
  // caller's parameters, `hash` digests the message here, and `signer` signs the digest.
  std::shared_ptr<const KeyHandle> signer;
  std::shared_ptr<SignPrototypes> prototypes;
  ossl::MdCtx hash;
  EVP_PKEY_CTX* inner() const { return md ? EVP_MD_CTX_get_pkey_ctx(md.get()) : pctx.get(); }
};

// A copy of `from` into `to` (nothing from nothing); false when it cannot be made.
bool copy_md(ossl::MdCtx& to, const ossl::MdCtx& from) {
  if (!from) return true;
  to.reset(EVP_MD_CTX_new());
  return to && EVP_MD_CTX_copy_ex(to.get(), from.get());
}

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
    to->signer = from->signer;
    to->prototypes = from->prototypes;
    if (from->pctx) {
      to->pctx.reset(EVP_PKEY_CTX_dup(from->pctx.get()));
      if (!to->pctx) return nullptr;
    }
    if (!copy_md(to->md, from->md) || !copy_md(to->hash, from->hash)) return nullptr;
    return to.release();
  });
}

// Chooses the key for an operation: to sign, a vault key's signer (its public half for the
// parameters) or an ordinary key with its private half; to verify, the public key.
bool take_key(SigCtx* c, void* provkey, bool sign) {
  auto* k = static_cast<KeyData*>(provkey);
  if (!k || k->algo != c->algo) {
    CV_RAISE(c->prov, kKeyOperation, "the key is not of this signature algorithm's type");
    return false;
  }
  c->name = k->name;
  c->signer = sign ? k->signer : nullptr;
  c->prototypes = sign ? k->prototypes : nullptr;
  c->key = sign && !k->has_private() ? nullptr : k->pub;
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

// The keystore's signing parameters for what the caller set on the context.
Result<SignParams> sign_params(const SigCtx* c) {
  SignParams p;
  p.mechanism = c->algo == Algo::kEc        ? SignMechanism::kEcdsa
                : c->algo == Algo::kEd25519 ? SignMechanism::kEd25519
                                            : SignMechanism::kRsaPkcs1;
  EVP_PKEY_CTX* inner = c->inner();
  if (c->algo == Algo::kEd25519 || !inner) return p;
  char digest[64] = "", mgf1[64] = "";
  int pad = 0, salt = 0;
  OSSL_PARAM ask[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, digest, sizeof digest),
      OSSL_PARAM_construct_end(), OSSL_PARAM_construct_end(), OSSL_PARAM_construct_end(),
      OSSL_PARAM_construct_end()};
  if (c->algo == Algo::kRsa) {
    ask[1] = OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PAD_MODE, &pad);
  }
  if (EVP_PKEY_CTX_get_params(inner, ask) <= 0)
    return fail(Code::kCrypto, "cannot read the signature parameters");
  if (*digest) {
    p.digest = agent::canonical_digest(digest);
    if (p.digest.empty())
      return fail(Code::kInvalidInput,
                  std::string("a vault key does not sign with digest ") + digest +
                      "; use SHA-1, SHA-224/256/384/512 or SHA3-224/256/384/512");
  }
  if (c->algo == Algo::kRsa && pad != RSA_PKCS1_PADDING && pad != RSA_PKCS1_PSS_PADDING)
    return fail(Code::kInvalidInput, "a vault key signs with RSA padding pkcs1 or pss only");
  if (c->algo == Algo::kRsa && pad == RSA_PKCS1_PSS_PADDING) {
    p.mechanism = SignMechanism::kRsaPss;
    OSSL_PARAM pss[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, mgf1, sizeof mgf1),
        OSSL_PARAM_construct_int(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, &salt),
        OSSL_PARAM_construct_end()};
    if (EVP_PKEY_CTX_get_params(inner, pss) <= 0)
      return fail(Code::kCrypto, "cannot read the RSA-PSS parameters");
    p.mgf1_digest = agent::canonical_digest(mgf1);
    if (salt >= 0) {
      p.salt_length = salt;
    } else if (salt != RSA_PSS_SALTLEN_DIGEST && !p.digest.empty()) {
      // "max" and "auto" sign with the longest salt that fits (RFC 8017 9.1.1).
      const EVP_MD* md = signing_digest(p.digest);
      const int em_len = (EVP_PKEY_get_bits(c->key.get()) - 1 + 7) / 8;
      p.salt_length = md ? em_len - EVP_MD_get_size(md) - 2 : -1;
    }
  }
  return p;
}

// A vault key's signature of `data` (a digest, or the message for Ed25519), handed over as
// give_signature() does.
int vault_signature(const SigCtx* c, unsigned char* sig, size_t* siglen, size_t sigsize,
                    std::span<const uint8_t> data) {
  const size_t max = static_cast<size_t>(EVP_PKEY_get_size(c->key.get()));
  if (!sig) {
    *siglen = max;
    return 1;
  }
  auto params = sign_params(c);
  if (!params) {
    CV_RAISE(c->prov, params.error());
    return 0;
  }
  auto got = c->signer->sign(*params, data);
  if (!got) {
    CV_RAISE(c->prov, kKeyOperation,
             "signing" + (c->name.empty() ? "" : " with " + c->name) + ": " + got.error().message);
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
    c->pctx.reset(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), c->key.get(), nullptr));
    // A vault key's context only keeps the parameters; its signer signs.
    const int ok = !c->pctx    ? 0
                   : c->signer ? EVP_PKEY_verify_init_ex(c->pctx.get(), params)
                               : EVP_PKEY_sign_init_ex(c->pctx.get(), params);
    if (ok <= 0) return key_failure(c, "starting a signature");
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
    if (c->signer) return vault_signature(c, sig, siglen, sigsize, {tbs, tbslen});
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

// How a vault key's digest-sign starts: a digest-verify context on its public key with the
// caller's digest and parameters, and that digest started (none for Ed25519).
bool make_start(const SigCtx* c, const char* mdname, const OSSL_PARAM params[],
                SignPrototypes::Start& out) {
  out.shape.reset(EVP_MD_CTX_new());
  if (!out.shape || EVP_DigestVerifyInit_ex(out.shape.get(), nullptr, mdname, ossl::libctx(),
                                            nullptr, c->key.get(), params) <= 0)
    return false;
  if (c->algo == Algo::kEd25519) return true;
  const EVP_MD* md = EVP_MD_CTX_get0_md(out.shape.get());
  out.hash.reset(EVP_MD_CTX_new());
  return md && out.hash && EVP_DigestInit_ex2(out.hash.get(), md, nullptr) > 0;
}

// A vault key's digest-sign started from its prototype for `mdname` (made on first use);
// false when there is none to copy.
bool from_prototype(SigCtx* c, const char* mdname) {
  // Ed25519 signs the message itself (one-shot); its context is not copied.
  if (!c->prototypes || c->algo == Algo::kEd25519) return false;
  const std::string digest = mdname ? mdname : "";
  std::lock_guard lock(c->prototypes->mu);
  auto& by_digest = c->prototypes->by_digest;
  auto it = by_digest.find(digest);
  if (it == by_digest.end()) {
    SignPrototypes::Start made;
    ERR_set_mark();
    const bool ok = make_start(c, mdname, nullptr, made);
    ERR_pop_to_mark();
    if (!ok) return false;
    it = by_digest.emplace(digest, std::move(made)).first;
  }
  if (copy_md(c->md, it->second.shape) && copy_md(c->hash, it->second.hash)) return true;
  c->md.reset();
  c->hash.reset();
  return false;
}

int digest_init(SigCtx* c, const char* mdname, void* provkey, const OSSL_PARAM params[],
                bool sign) {
  if (!take_key(c, provkey, sign)) return 0;
  if (mdname && !*mdname) mdname = nullptr;
  if (c->signer) {
    if ((!params || !params[0].key) && from_prototype(c, mdname)) return 1;
    SignPrototypes::Start start;
    if (!make_start(c, mdname, params, start)) return key_failure(c, "starting a signature");
    c->md = std::move(start.shape);
    c->hash = std::move(start.hash);
    return 1;
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
  if (c->signer) return c->hash && EVP_DigestUpdate(c->hash.get(), data, len) > 0;
  return c->md && EVP_DigestSignUpdate(c->md.get(), data, len) > 0;
}

int sig_digest_verify_update(void* ctx, const unsigned char* data, size_t len) {
  auto* c = static_cast<SigCtx*>(ctx);
  return c->md && EVP_DigestVerifyUpdate(c->md.get(), data, len) > 0;
}

int sig_digest_sign_final(void* ctx, unsigned char* sig, size_t* siglen, size_t sigsize) {
  return guarded(nullptr, 0, [&] {
    auto* c = static_cast<SigCtx*>(ctx);
    if (c->signer) {
      if (!c->hash) return 0;
      if (!sig) return vault_signature(c, sig, siglen, sigsize, {});
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (EVP_DigestFinal_ex(c->hash.get(), digest, &len) <= 0) return 0;
      return vault_signature(c, sig, siglen, sigsize, {digest, len});
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
    if (c->signer) {
      if (c->algo == Algo::kEd25519 || !sig)
        return vault_signature(c, sig, siglen, sigsize, {tbs, tbslen});
      if (!c->hash) return 0;
      unsigned char digest[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (EVP_DigestUpdate(c->hash.get(), tbs, tbslen) <= 0 ||
          EVP_DigestFinal_ex(c->hash.get(), digest, &len) <= 0)
        return 0;
      return vault_signature(c, sig, siglen, sigsize, {digest, len});
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

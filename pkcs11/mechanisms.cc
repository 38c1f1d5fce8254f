#include "mechanisms.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <cstring>
#include <span>

#include "ossl.h"
#include "token.h"

namespace certvault::pkcs11 {
namespace {

bool is_rsa(KeyType t) {
  return t == KeyType::kRsa2048 || t == KeyType::kRsa3072 || t == KeyType::kRsa4096;
}

const char* digest_of(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_SHA256:
    case CKM_SHA256_RSA_PKCS:
    case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA256:
      return "SHA256";
    case CKM_SHA384:
    case CKM_SHA384_RSA_PKCS:
    case CKM_SHA384_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA384:
      return "SHA384";
    case CKM_SHA512:
    case CKM_SHA512_RSA_PKCS:
    case CKM_SHA512_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA512:
      return "SHA512";
    default:
      return nullptr;
  }
}

const char* mgf1_of(CK_RSA_PKCS_MGF_TYPE mgf) {
  switch (mgf) {
    case CKG_MGF1_SHA256:
      return "SHA256";
    case CKG_MGF1_SHA384:
      return "SHA384";
    case CKG_MGF1_SHA512:
      return "SHA512";
    default:
      return nullptr;
  }
}

// CK_EDDSA_PARAMS (current mechanisms v3.0 2.3.14), which p11-kit before 0.25 lacks; named
// here so as not to clash with the declaration of later p11-kit.
struct EddsaParams {
  CK_BBOOL phFlag;
  CK_ULONG ulContextDataLen;
  CK_BYTE_PTR pContextData;
};

// Current mechanisms v3.0 2.3.14: CKM_EDDSA's parameter chooses the RFC 8032 scheme. The
// module signs Ed25519 only: no parameter, or one asking for no prehash and no context;
// Ed25519ph (phFlag) and Ed25519ctx (context data) are refused, not signed as Ed25519.
bool pure_ed25519(const CK_MECHANISM& m) {
  if (m.ulParameterLen == 0) return true;
  if (!m.pParameter || m.ulParameterLen != sizeof(EddsaParams)) return false;
  const auto* p = static_cast<const EddsaParams*>(m.pParameter);
  return p->phFlag == CK_FALSE && p->ulContextDataLen == 0;
}

bool is_pss(CK_MECHANISM_TYPE m) {
  return m == CKM_RSA_PKCS_PSS || m == CKM_SHA256_RSA_PKCS_PSS || m == CKM_SHA384_RSA_PKCS_PSS ||
         m == CKM_SHA512_RSA_PKCS_PSS;
}

// ECDSA in PKCS#11 is r || s, each as wide as the curve order (v2.40 mechanisms, 2.3.1);
// OpenSSL gives the DER Ecdsa-Sig-Value, SEQUENCE { INTEGER r, INTEGER s } (RFC 3279
// 2.2.3). Its two integers are copied straight into place: decoding them into BIGNUMs
// cost more than the rest of the module's work per signature. The input is always
// OpenSSL's own output, so this checks bounds and shape, not DER's minimality: anything but
// that SEQUENCE with short-form lengths (P-256 and P-384 content is at most 102 bytes) and
// two non-negative integers whose value fits in `half` bytes gives an empty result;
// leading zero octets are skipped.
std::vector<uint8_t> ecdsa_raw(std::span<const uint8_t> der, size_t half) {
  size_t at = 0;
  // One tag and short-form length; the content must lie within `end`.
  auto header = [&](uint8_t tag, size_t end, size_t& len) {
    if (at + 2 > end || der[at] != tag || der[at + 1] >= 0x80) return false;
    len = der[at + 1];
    at += 2;
    return len <= end - at;
  };
  size_t seq_len = 0;
  if (!header(0x30, der.size(), seq_len) || at + seq_len != der.size()) return {};
  std::vector<uint8_t> out(2 * half, 0);
  for (size_t i = 0; i < 2; ++i) {
    size_t len = 0;
    if (!header(0x02, der.size(), len) || len == 0 || (der[at] & 0x80)) return {};
    size_t skip = 0;
    while (skip + 1 < len && der[at + skip] == 0) ++skip;
    const size_t width = len - skip;
    if (width > half) return {};
    std::memcpy(out.data() + i * half + (half - width), der.data() + at + skip, width);
    at += len;
  }
  if (at != der.size()) return {};
  return out;
}

// Bytes of one integer of an ECDSA signature: the curve order's width. Every key type is
// listed, so that a new curve cannot be missed (-Wswitch).
size_t ec_half(KeyType t) {
  switch (t) {
    case KeyType::kEcP256:
      return 32;
    case KeyType::kEcP384:
      return 48;
    case KeyType::kRsa2048:
    case KeyType::kRsa3072:
    case KeyType::kRsa4096:
    case KeyType::kEd25519:
      return 0;  // not ECDSA
  }
  return 0;
}

std::vector<uint8_t> ecdsa_der(const std::vector<uint8_t>& raw) {
  const size_t half = raw.size() / 2;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(raw.data(), static_cast<int>(half), nullptr);
  BIGNUM* s = BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr);
  if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return {};
  }
  std::vector<uint8_t> out(static_cast<size_t>(i2d_ECDSA_SIG(sig, nullptr)));
  unsigned char* p = out.data();
  i2d_ECDSA_SIG(sig, &p);
  ECDSA_SIG_free(sig);
  return out;
}

}  // namespace

std::vector<CK_MECHANISM_TYPE> sign_mechanisms(KeyType t) {
  if (is_rsa(t))
    return {CKM_RSA_PKCS,
            CKM_SHA256_RSA_PKCS,
            CKM_SHA384_RSA_PKCS,
            CKM_SHA512_RSA_PKCS,
            CKM_RSA_PKCS_PSS,
            CKM_SHA256_RSA_PKCS_PSS,
            CKM_SHA384_RSA_PKCS_PSS,
            CKM_SHA512_RSA_PKCS_PSS};
  if (t == KeyType::kEd25519) return {CKM_EDDSA};
  return {CKM_ECDSA, CKM_ECDSA_SHA256, CKM_ECDSA_SHA384, CKM_ECDSA_SHA512};
}

std::vector<CK_MECHANISM_TYPE> all_mechanisms() {
  std::vector<CK_MECHANISM_TYPE> out;
  for (KeyType t : {KeyType::kRsa2048, KeyType::kEcP256, KeyType::kEd25519})
    for (auto m : sign_mechanisms(t)) out.push_back(m);
  for (auto m : {CKM_SHA256, CKM_SHA384, CKM_SHA512}) out.push_back(m);
  for (auto m : {CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_EC_KEY_PAIR_GEN, CKM_EC_EDWARDS_KEY_PAIR_GEN})
    out.push_back(m);
  return out;
}

CK_RV mechanism_info(CK_MECHANISM_TYPE type, CK_MECHANISM_INFO* info) {
  std::memset(info, 0, sizeof *info);
  switch (type) {
    case CKM_RSA_PKCS:
    case CKM_RSA_PKCS_PSS:
    case CKM_SHA256_RSA_PKCS:
    case CKM_SHA384_RSA_PKCS:
    case CKM_SHA512_RSA_PKCS:
    case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_SHA384_RSA_PKCS_PSS:
    case CKM_SHA512_RSA_PKCS_PSS:
      *info = {2048, 4096, CKF_SIGN | CKF_VERIFY};
      return CKR_OK;
    case CKM_ECDSA:
    case CKM_ECDSA_SHA256:
    case CKM_ECDSA_SHA384:
    case CKM_ECDSA_SHA512:
      *info = {256, 384,
               CKF_SIGN | CKF_VERIFY | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS};
      return CKR_OK;
    case CKM_EDDSA:
      *info = {255, 255, CKF_SIGN | CKF_VERIFY};
      return CKR_OK;
    case CKM_SHA256:
    case CKM_SHA384:
    case CKM_SHA512:
      *info = {0, 0, CKF_DIGEST};
      return CKR_OK;
    case CKM_RSA_PKCS_KEY_PAIR_GEN:
      *info = {2048, 4096, CKF_GENERATE_KEY_PAIR};
      return CKR_OK;
    case CKM_EC_KEY_PAIR_GEN:
      *info = {256, 384,
               CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS};
      return CKR_OK;
    case CKM_EC_EDWARDS_KEY_PAIR_GEN:
      *info = {255, 255, CKF_GENERATE_KEY_PAIR};
      return CKR_OK;
    default:
      return CKR_MECHANISM_INVALID;
  }
}

CK_RV SignOperation::start(Purpose purpose, const CK_MECHANISM* m, KeyType key_type, KeyRef key,
                           std::unique_ptr<SignOperation>& out, Signer signer) {
  if (!m) return CKR_ARGUMENTS_BAD;
  if (purpose == Purpose::kSign && !signer) return CKR_KEY_FUNCTION_NOT_PERMITTED;
  auto allowed = sign_mechanisms(key_type);
  if (std::find(allowed.begin(), allowed.end(), m->mechanism) == allowed.end()) {
    // A signing mechanism of another key type, or not a signing mechanism at all.
    for (KeyType t : {KeyType::kRsa2048, KeyType::kEcP256, KeyType::kEd25519}) {
      auto other = sign_mechanisms(t);
      if (std::find(other.begin(), other.end(), m->mechanism) != other.end())
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    return CKR_MECHANISM_INVALID;
  }
  std::unique_ptr<SignOperation> op(new SignOperation());
  op->purpose_ = purpose;
  op->mech_ = m->mechanism;
  op->key_type_ = key_type;
  op->key_ = std::move(key);
  if (purpose == Purpose::kSign) op->signer_ = std::move(signer);
  if (is_pss(m->mechanism)) {
    // PKCS#11 current mechanisms 2.1.9 and 2.1.10: CK_RSA_PKCS_PSS_PARAMS is required.
    if (!m->pParameter || m->ulParameterLen != sizeof(CK_RSA_PKCS_PSS_PARAMS))
      return CKR_MECHANISM_PARAM_INVALID;
    auto* p = static_cast<const CK_RSA_PKCS_PSS_PARAMS*>(m->pParameter);
    const char* pss_md = digest_of(p->hashAlg);
    const char* mgf1_md = mgf1_of(p->mgf);
    const char* implied = digest_of(m->mechanism);
    if (!pss_md || !mgf1_md || (implied && std::strcmp(implied, pss_md) != 0) || p->sLen > 1024)
      return CKR_MECHANISM_PARAM_INVALID;
    op->pss_md_.reset(EVP_MD_fetch(ossl::libctx(), pss_md, nullptr));
    op->mgf1_md_.reset(EVP_MD_fetch(ossl::libctx(), mgf1_md, nullptr));
    if (!op->pss_md_ || !op->mgf1_md_) return CKR_FUNCTION_FAILED;
    op->salt_len_ = static_cast<int>(p->sLen);
  } else if (m->mechanism == CKM_EDDSA ? !pure_ed25519(*m) : m->ulParameterLen != 0) {
    return CKR_MECHANISM_PARAM_INVALID;
  }
  if (is_rsa(key_type)) {
    op->size_ = static_cast<size_t>(EVP_PKEY_get_size(op->key_.get()));
  } else if (key_type == KeyType::kEd25519) {
    op->size_ = 64;
  } else {
    op->size_ = 2 * ec_half(key_type);
  }
  if (const char* md = digest_of(m->mechanism); md && op->signer_) {
    // The signer signs the digest (in this process or in the agent): only hashing here.
    const EVP_MD* fetched = signing_digest(md);
    op->md_ctx_ = EVP_MD_CTX_new();
    if (!fetched || !op->md_ctx_ || EVP_DigestInit_ex2(op->md_ctx_, fetched, nullptr) != 1)
      return CKR_FUNCTION_FAILED;
  } else if (md) {
    op->md_ctx_ = EVP_MD_CTX_new();
    EVP_PKEY_CTX* pctx = nullptr;
    auto init = purpose == Purpose::kSign ? EVP_DigestSignInit_ex : EVP_DigestVerifyInit_ex;
    if (!op->md_ctx_ ||
        init(op->md_ctx_, &pctx, md, ossl::libctx(), nullptr, op->key_.get(), nullptr) != 1)
      return CKR_FUNCTION_FAILED;
    if (is_rsa(key_type)) {
      bool ok = is_pss(m->mechanism)
                    ? EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
                          EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, op->mgf1_md_.get()) > 0 &&
                          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, op->salt_len_) > 0
                    : EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
      if (!ok) return CKR_MECHANISM_PARAM_INVALID;
    }
  }
  out = std::move(op);
  return CKR_OK;
}

bool SignOperation::multi_part() const {
  // Current mechanisms v3.0, tables "Mechanisms vs. Functions" of 2.1 (RSA) and 2.3 (elliptic
  // curves): CKM_RSA_PKCS, CKM_RSA_PKCS_PSS and CKM_ECDSA sign and verify in single-part
  // operations only; CKM_EDDSA and the hash-and-sign mechanisms in both.
  return mech_ != CKM_RSA_PKCS && mech_ != CKM_RSA_PKCS_PSS && mech_ != CKM_ECDSA;
}

SignOperation::~SignOperation() {
  EVP_MD_CTX_free(md_ctx_);
  OPENSSL_cleanse(data_.data(), data_.size());
}

CK_RV SignOperation::update(const uint8_t* data, size_t len) {
  if (md_ctx_) {
    int ok = signer_                      ? EVP_DigestUpdate(md_ctx_, data, len)
             : purpose_ == Purpose::kSign ? EVP_DigestSignUpdate(md_ctx_, data, len)
                                          : EVP_DigestVerifyUpdate(md_ctx_, data, len);
    return ok == 1 ? CKR_OK : CKR_FUNCTION_FAILED;
  }
  data_.insert(data_.end(), data, data + len);
  return CKR_OK;
}

CK_RV SignOperation::raw_context(ossl::PkeyCtx& pctx) {
  OSSL_LIB_CTX* ctx = ossl::libctx();
  pctx.reset(EVP_PKEY_CTX_new_from_pkey(ctx, key_.get(), nullptr));
  int init = !pctx                        ? 0
             : purpose_ == Purpose::kSign ? EVP_PKEY_sign_init(pctx.get())
                                          : EVP_PKEY_verify_init(pctx.get());
  if (init != 1) return CKR_FUNCTION_FAILED;
  if (mech_ == CKM_RSA_PKCS) {
    if (EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_PADDING) <= 0)
      return CKR_FUNCTION_FAILED;
    if (data_.size() + 11 > size_) return CKR_DATA_LEN_RANGE;
  } else if (mech_ == CKM_RSA_PKCS_PSS) {
    if (data_.size() != static_cast<size_t>(EVP_MD_get_size(pss_md_.get())))
      return CKR_DATA_LEN_RANGE;
    if (EVP_PKEY_CTX_set_rsa_padding(pctx.get(), RSA_PKCS1_PSS_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_signature_md(pctx.get(), pss_md_.get()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx.get(), mgf1_md_.get()) <= 0 ||
        EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx.get(), salt_len_) <= 0)
      return CKR_MECHANISM_PARAM_INVALID;
  }
  return CKR_OK;
}

CK_RV SignOperation::signature(std::vector<uint8_t>& sig) {
  SignParams p;
  p.mechanism = is_rsa(key_type_)
                    ? (is_pss(mech_) ? SignMechanism::kRsaPss : SignMechanism::kRsaPkcs1)
                : key_type_ == KeyType::kEd25519 ? SignMechanism::kEd25519
                                                 : SignMechanism::kEcdsa;
  std::vector<uint8_t> input;
  if (md_ctx_) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(md_ctx_, digest, &len) != 1) return CKR_FUNCTION_FAILED;
    input.assign(digest, digest + len);
    p.digest = agent::canonical_digest(digest_of(mech_));
  } else {
    if (mech_ == CKM_RSA_PKCS && data_.size() + 11 > size_) return CKR_DATA_LEN_RANGE;
    input = data_;
  }
  if (is_pss(mech_)) {
    p.digest = agent::canonical_digest(EVP_MD_get0_name(pss_md_.get()));
    p.mgf1_digest = agent::canonical_digest(EVP_MD_get0_name(mgf1_md_.get()));
    p.salt_length = salt_len_;
    if (input.size() != static_cast<size_t>(EVP_MD_get_size(pss_md_.get())))
      return CKR_DATA_LEN_RANGE;
  }
  auto got = signer_->sign(p, input);
  if (!got) {
    // In the codes C_Sign may return (v2.40 5.11): the parameters are the module's own, so
    // what the signer refuses as input is the data's size; a key gone since C_SignInit
    // (deleted or disabled, the agent says) and a refusal by its policy are rejections.
    switch (got.error().code) {
      case Code::kInvalidInput:
        return CKR_DATA_LEN_RANGE;
      case Code::kNotFound:
      case Code::kRefused:
        return CKR_FUNCTION_REJECTED;
      case Code::kLocked:
        return CKR_USER_NOT_LOGGED_IN;
      case Code::kCrypto:
        return CKR_FUNCTION_FAILED;
      default:
        return CKR_DEVICE_ERROR;
    }
  }
  sig = std::move(*got);
  return CKR_OK;
}

CK_RV SignOperation::compute() {
  std::vector<uint8_t> sig;
  if (CK_RV rv = signature(sig); rv != CKR_OK) return rv;
  if (!is_rsa(key_type_) && key_type_ != KeyType::kEd25519) {
    sig = ecdsa_raw(sig, ec_half(key_type_));
    if (sig.empty()) return CKR_FUNCTION_FAILED;
  }
  result_ = std::move(sig);
  return CKR_OK;
}

CK_RV SignOperation::finish(uint8_t* out, CK_ULONG* out_len) {
  if (!out) {
    *out_len = result_.empty() ? size_ : result_.size();
    return CKR_OK;
  }
  if (result_.empty()) {
    // The module reports through CK_RV; OpenSSL's errors go, the host's own stay.
    ERR_set_mark();
    CK_RV rv = compute();
    ERR_pop_to_mark();
    if (rv != CKR_OK) return rv;
  }
  if (*out_len < result_.size()) {
    *out_len = result_.size();
    return CKR_BUFFER_TOO_SMALL;
  }
  std::memcpy(out, result_.data(), result_.size());
  *out_len = result_.size();
  return CKR_OK;
}

CK_RV SignOperation::check(const uint8_t* signature, size_t len) {
  if (len != size_ && !(is_rsa(key_type_) && len < size_)) return CKR_SIGNATURE_LEN_RANGE;
  std::vector<uint8_t> sig(signature, signature + len);
  if (!is_rsa(key_type_) && key_type_ != KeyType::kEd25519) {
    sig = ecdsa_der(sig);  // PKCS#11 gives r || s; OpenSSL takes DER
    if (sig.empty()) return CKR_SIGNATURE_INVALID;
  }
  ERR_set_mark();  // a bad signature leaves no error in the host's queue
  int ok = 0;
  if (md_ctx_) {
    ok = EVP_DigestVerifyFinal(md_ctx_, sig.data(), sig.size());
  } else if (mech_ == CKM_EDDSA) {
    ossl::MdCtx md(EVP_MD_CTX_new());
    ok = md &&
         EVP_DigestVerifyInit_ex(md.get(), nullptr, nullptr, ossl::libctx(), nullptr, key_.get(),
                                 nullptr) == 1 &&
         EVP_DigestVerify(md.get(), sig.data(), sig.size(), data_.data(), data_.size()) == 1;
  } else {
    ossl::PkeyCtx pctx;
    if (CK_RV rv = raw_context(pctx); rv != CKR_OK) {
      ERR_pop_to_mark();
      return rv;
    }
    ok = EVP_PKEY_verify(pctx.get(), sig.data(), sig.size(), data_.data(), data_.size());
  }
  ERR_pop_to_mark();
  return ok == 1 ? CKR_OK : CKR_SIGNATURE_INVALID;
}

}  // namespace certvault::pkcs11

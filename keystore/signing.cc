#include "signing.h"

#include <openssl/rsa.h>

#include <algorithm>
#include <array>

#include "ossl.h"
#include "uri.h"

namespace certvault {
namespace {

constexpr std::array<std::pair<SignMechanism, std::string_view>, 4> kMechanisms{{
    {SignMechanism::kEcdsa, "ecdsa"},
    {SignMechanism::kRsaPkcs1, "rsa-pkcs1"},
    {SignMechanism::kRsaPss, "rsa-pss"},
    {SignMechanism::kEd25519, "ed25519"},
}};

bool is_rsa(KeyType t) {
  return t == KeyType::kRsa2048 || t == KeyType::kRsa3072 || t == KeyType::kRsa4096;
}

bool fits(KeyType t, SignMechanism m) {
  switch (m) {
    case SignMechanism::kEcdsa:
      return t == KeyType::kEcP256 || t == KeyType::kEcP384;
    case SignMechanism::kRsaPkcs1:
    case SignMechanism::kRsaPss:
      return is_rsa(t);
    case SignMechanism::kEd25519:
      return t == KeyType::kEd25519;
  }
  return false;
}

bool known_digest(std::string_view d) {
  static constexpr std::string_view kDigests[] = {"sha1",     "sha224",   "sha256",   "sha384",
                                                  "sha512",   "sha3-224", "sha3-256", "sha3-384",
                                                  "sha3-512", "md5-sha1"};
  for (auto k : kDigests)
    if (d == k) return true;
  return false;
}

}  // namespace

std::string_view to_string(SignMechanism m) {
  for (const auto& [v, name] : kMechanisms)
    if (v == m) return name;
  return "?";
}

Result<SignMechanism> parse_sign_mechanism(std::string_view text) {
  for (const auto& [v, name] : kMechanisms)
    if (text == name) return v;
  return fail(Code::kInvalidInput, "unknown signing mechanism '" + std::string(text.substr(0, 32)) +
                                       "'; use ecdsa, rsa-pkcs1, rsa-pss or ed25519");
}

Result<void> check_sign_params(KeyType t, const SignParams& p, size_t data_size) {
  if (!fits(t, p.mechanism))
    return fail(Code::kInvalidInput, "a " + std::string(to_string(t)) + " key cannot sign with " +
                                         std::string(to_string(p.mechanism)));
  if (data_size == 0 || data_size > kMaxSignInput)
    return fail(Code::kInvalidInput,
                "the data to sign must be 1 to " + std::to_string(kMaxSignInput) + " bytes");
  if (p.mechanism == SignMechanism::kEd25519 && !p.digest.empty())
    return fail(Code::kInvalidInput, "Ed25519 signs the message itself, with no digest");
  if (!p.digest.empty() && !known_digest(p.digest))
    return fail(Code::kInvalidInput, "unknown digest '" + p.digest.substr(0, 32) + "'");
  if (p.mechanism == SignMechanism::kRsaPss) {
    if (p.digest.empty()) return fail(Code::kInvalidInput, "RSA-PSS needs the digest it signs");
    if (!p.mgf1_digest.empty() && !known_digest(p.mgf1_digest))
      return fail(Code::kInvalidInput, "unknown MGF1 digest '" + p.mgf1_digest.substr(0, 32) + "'");
    if (p.salt_length < -1 || p.salt_length > 1024)
      return fail(Code::kInvalidInput, "RSA-PSS salt length out of range");
  }
  return {};
}

const EVP_MD* signing_digest(const std::string& name) {
  return ossl::digest(name);
}

namespace {

// A signing context on `key` set up for `p` (not Ed25519, which signs whole messages).
Result<ossl::PkeyCtx> prepare(EVP_PKEY* key, const SignParams& p) {
  ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), key, nullptr));
  if (!ctx || EVP_PKEY_sign_init(ctx.get()) != 1) return ossl::crypto_fail("signature");
  const EVP_MD* md = p.digest.empty() ? nullptr : signing_digest(p.digest);
  if (!p.digest.empty() && !md) return ossl::crypto_fail("digest " + p.digest);
  bool ok = true;
  if (p.mechanism == SignMechanism::kRsaPkcs1) {
    ok = EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING) > 0 &&
         (!md || EVP_PKEY_CTX_set_signature_md(ctx.get(), md) > 0);
  } else if (p.mechanism == SignMechanism::kRsaPss) {
    const EVP_MD* mgf1 = signing_digest(p.mgf1_digest.empty() ? p.digest : p.mgf1_digest);
    ok = mgf1 && EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_signature_md(ctx.get(), md) > 0 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx.get(), mgf1) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx.get(), p.salt_length < 0
                                                         ? RSA_PSS_SALTLEN_DIGEST
                                                         : static_cast<int>(p.salt_length)) > 0;
  } else if (md) {
    ok = EVP_PKEY_CTX_set_signature_md(ctx.get(), md) > 0;
  }
  if (!ok) return ossl::crypto_fail("signature parameters");
  return ctx;
}

Result<std::vector<uint8_t>> sign_with(EVP_PKEY_CTX* ctx, EVP_PKEY* key, const SignParams& p,
                                       std::span<const uint8_t> data) {
  if (!p.digest.empty()) {
    const EVP_MD* md = signing_digest(p.digest);
    if (!md || static_cast<size_t>(EVP_MD_get_size(md)) != data.size())
      return fail(Code::kInvalidInput, "the data to sign is not a " + p.digest + " digest");
  }
  std::vector<uint8_t> sig(static_cast<size_t>(EVP_PKEY_get_size(key)));
  size_t len = sig.size();
  if (EVP_PKEY_sign(ctx, sig.data(), &len, data.data(), data.size()) != 1)
    return ossl::crypto_fail("signature");
  sig.resize(len);
  return sig;
}

Result<std::vector<uint8_t>> sign_ed25519(EVP_PKEY* key, std::span<const uint8_t> data) {
  std::vector<uint8_t> sig(static_cast<size_t>(EVP_PKEY_get_size(key)));
  size_t len = sig.size();
  ossl::MdCtx md(EVP_MD_CTX_new());
  if (!md ||
      EVP_DigestSignInit_ex(md.get(), nullptr, nullptr, ossl::libctx(), nullptr, key, nullptr) !=
          1 ||
      EVP_DigestSign(md.get(), sig.data(), &len, data.data(), data.size()) != 1)
    return ossl::crypto_fail("Ed25519 signature");
  sig.resize(len);
  return sig;
}

}  // namespace

SigningKey::SigningKey(std::shared_ptr<EVP_PKEY> key, KeyType type)
    : key_(std::move(key)), type_(type) {}

SigningKey::~SigningKey() {
  for (auto& [k, ctx] : prepared_) EVP_PKEY_CTX_free(ctx);
}

Result<std::vector<uint8_t>> SigningKey::sign(const SignParams& p,
                                              std::span<const uint8_t> data) const {
  CV_CHECK(check_sign_params(type_, p, data.size()));
  if (p.mechanism == SignMechanism::kEd25519) return sign_ed25519(key_.get(), data);
  const std::string id = std::string(to_string(p.mechanism)) + "/" + p.digest + "/" +
                         p.mgf1_digest + "/" + std::to_string(p.salt_length);
  ossl::PkeyCtx ctx;
  {
    std::lock_guard lock(mu_);
    auto it = prepared_.find(id);
    if (it == prepared_.end()) {
      CV_TRY(made, prepare(key_.get(), p));
      it = prepared_.emplace(id, made.release()).first;
    }
    ctx.reset(EVP_PKEY_CTX_dup(it->second));
  }
  if (!ctx) return ossl::crypto_fail("signature");
  return sign_with(ctx.get(), key_.get(), p, data);
}

Result<void> check_usable(const Entry& e, const Generation& g, Time t) {
  // `disable` turns the active generation disabled; the superseded ones stop with it.
  const bool entry_disabled =
      !e.current() &&
      std::any_of(e.generations.begin(), e.generations.end(),
                  [](const Generation& x) { return x.status == Status::kDisabled; });
  if (entry_disabled)
    return fail(Code::kRefused, "'" + e.nickname + "' is disabled", Remedy::kEnable, e.nickname);
  switch (g.status) {
    case Status::kActive:
      return {};
    case Status::kSuperseded:
      if (t <= g.not_after) return {};
      return fail(Code::kRefused, "generation " + std::to_string(g.number) + " of '" + e.nickname +
                                      "' was replaced and has expired; reload the program to "
                                      "use the current one");
    case Status::kDisabled:
      return fail(Code::kRefused, "'" + e.nickname + "' is disabled", Remedy::kEnable, e.nickname);
    case Status::kPending:
      return fail(Code::kRefused, "'" + e.nickname + "' has no certificate yet", Remedy::kAttach,
                  e.nickname);
  }
  return fail(Code::kRefused, "'" + e.nickname + "' cannot be used");
}

Result<const Generation*> resolve_generation(const Entry& e, const GenerationWanted& wanted,
                                             std::string_view where, Time now) {
  const Generation* g = nullptr;
  if (wanted.number) {
    g = e.generation(*wanted.number);
    if (!g)
      return fail(Code::kNotFound,
                  "'" + e.nickname + "' has no generation " + std::to_string(*wanted.number) +
                      " in " + std::string(where),
                  Remedy::kShowGenerations, e.nickname);
  } else if (wanted.serial) {
    const std::string serial = normalise_serial(*wanted.serial);
    for (const auto& x : e.generations)
      if (!serial.empty() && normalise_serial(x.serial) == serial) g = &x;
    if (!g)
      return fail(Code::kNotFound,
                  "'" + e.nickname + "' has no generation with serial " + *wanted.serial + " in " +
                      std::string(where),
                  Remedy::kShowGenerations, e.nickname);
  } else {
    g = e.current();
    // No active generation: the newest says why (disabled, or waiting for its certificate).
    if (!g && !e.generations.empty()) g = &e.generations.back();
    if (!g) return fail(Code::kRefused, "'" + e.nickname + "' has no usable certificate");
  }
  CV_CHECK(check_usable(e, *g, now));
  return g;
}

}  // namespace certvault

#include "keys.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/sha.h>

#include "seal.h"

namespace certvault::keys {

Result<ossl::Pkey> generate(KeyType type) {
  OSSL_LIB_CTX* ctx = ossl::libctx();
  EVP_PKEY* key = nullptr;
  switch (type) {
    case KeyType::kEcP256:
      key = EVP_PKEY_Q_keygen(ctx, nullptr, "EC", "P-256");
      break;
    case KeyType::kEcP384:
      key = EVP_PKEY_Q_keygen(ctx, nullptr, "EC", "P-384");
      break;
    case KeyType::kRsa2048:
      key = EVP_PKEY_Q_keygen(ctx, nullptr, "RSA", size_t{2048});
      break;
    case KeyType::kRsa3072:
      key = EVP_PKEY_Q_keygen(ctx, nullptr, "RSA", size_t{3072});
      break;
    case KeyType::kRsa4096:
      key = EVP_PKEY_Q_keygen(ctx, nullptr, "RSA", size_t{4096});
      break;
    case KeyType::kEd25519:
      key = EVP_PKEY_Q_keygen(ctx, nullptr, "ED25519");
      break;
  }
  if (!key) return ossl::crypto_fail("cannot generate a " + std::string(to_string(type)) + " key");
  return ossl::Pkey(key);
}

Result<KeyType> type_of(EVP_PKEY* pkey) {
  if (EVP_PKEY_is_a(pkey, "ED25519")) return KeyType::kEd25519;
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    switch (EVP_PKEY_get_bits(pkey)) {
      case 2048:
        return KeyType::kRsa2048;
      case 3072:
        return KeyType::kRsa3072;
      case 4096:
        return KeyType::kRsa4096;
      default:
        return fail(Code::kInvalidInput, "RSA key of " + std::to_string(EVP_PKEY_get_bits(pkey)) +
                                             " bits is not supported; use 2048, 3072 or 4096");
    }
  }
  if (EVP_PKEY_is_a(pkey, "EC")) {
    char group[64] = {};
    size_t len = 0;
    EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len);
    std::string_view g(group, len);
    if (g == "prime256v1" || g == "P-256") return KeyType::kEcP256;
    if (g == "secp384r1" || g == "P-384") return KeyType::kEcP384;
    return fail(Code::kInvalidInput,
                "EC curve '" + std::string(g) + "' is not supported; use P-256 or P-384");
  }
  return fail(Code::kInvalidInput, "key algorithm is not supported; use EC, RSA or Ed25519");
}

std::string key_id(EVP_PKEY* pkey) {
  auto spki = ossl::spki_der(pkey);
  const unsigned char* p = spki.data();
  X509_PUBKEY* xpk = d2i_X509_PUBKEY(nullptr, &p, static_cast<long>(spki.size()));
  if (!xpk) return {};
  const unsigned char* bits = nullptr;
  int len = 0;
  X509_PUBKEY_get0_param(nullptr, &bits, &len, nullptr, xpk);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(bits, static_cast<size_t>(len), digest);
  X509_PUBKEY_free(xpk);
  return seal::to_hex(digest);
}

Result<SecureBytes> private_der(EVP_PKEY* pkey) {
  PKCS8_PRIV_KEY_INFO* p8 = EVP_PKEY2PKCS8(pkey);
  if (!p8) return ossl::crypto_fail("cannot encode the private key");
  int n = i2d_PKCS8_PRIV_KEY_INFO(p8, nullptr);
  SecureBytes out(n > 0 ? static_cast<size_t>(n) : 0);
  unsigned char* p = out.data();
  if (n > 0) i2d_PKCS8_PRIV_KEY_INFO(p8, &p);
  PKCS8_PRIV_KEY_INFO_free(p8);  // clears its copy of the key
  if (n <= 0) return ossl::crypto_fail("cannot encode the private key");
  return out;
}

Result<ossl::Pkey> from_private_der(const SecureBytes& der) {
  const unsigned char* p = der.data();
  PKCS8_PRIV_KEY_INFO* p8 = d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, static_cast<long>(der.size()));
  if (!p8) {
    ERR_clear_error();
    return fail(Code::kTampered, "sealed private key does not decode");
  }
  ossl::Pkey key(EVP_PKCS82PKEY_ex(p8, ossl::libctx(), nullptr));
  PKCS8_PRIV_KEY_INFO_free(p8);
  if (!key) {
    ERR_clear_error();
    return fail(Code::kTampered, "sealed private key does not decode");
  }
  return key;
}

bool same_public(EVP_PKEY* a, EVP_PKEY* b) {
  int r = EVP_PKEY_eq(a, b);
  ERR_clear_error();
  return r == 1;
}

}  // namespace certvault::keys

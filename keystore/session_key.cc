#include "session_key.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>

#include "keys.h"

namespace certvault::session_key {
namespace {

using ParamBld = ossl::Ptr<OSSL_PARAM_BLD, OSSL_PARAM_BLD_free>;
using Params = ossl::Ptr<OSSL_PARAM, OSSL_PARAM_free>;
using Group = ossl::Ptr<EC_GROUP, EC_GROUP_free>;
using Point = ossl::Ptr<EC_POINT, EC_POINT_free>;
using SecretBn = ossl::Ptr<BIGNUM, BN_clear_free>;

const char* group_name(KeyType t) {
  return t == KeyType::kEcP384 ? "P-384" : "P-256";
}

bool is_ec(KeyType t) {
  return t == KeyType::kEcP256 || t == KeyType::kEcP384;
}

// A key from OSSL_PARAMs, in the keystore's library context.
Result<ossl::Pkey> from_params(const char* algorithm, OSSL_PARAM_BLD* bld, int selection,
                               std::string_view what) {
  Params params(OSSL_PARAM_BLD_to_param(bld));
  ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(ossl::libctx(), algorithm, nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, selection, params.get()) != 1)
    return fail(Code::kInvalidInput, std::string(what) + " is not a valid key (" +
                                         ossl::last_error() + "); give its parts as PKCS#11 does");
  return ossl::Pkey(key);
}

// A key made from parts must be one a vault could hold, whole and consistent.
Result<SessionKey> finish(ossl::Pkey key, bool check) {
  CV_TRY(type, keys::type_of(key.get()));
  if (check) {
    ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), key.get(), nullptr));
    if (!ctx || EVP_PKEY_check(ctx.get()) != 1)
      return fail(Code::kInvalidInput, "the private key's parts do not make one " +
                                           std::string(to_string(type)) +
                                           " key; give the parts of one key");
  }
  SessionKey out;
  out.type = type;
  out.spki = ossl::spki_der(key.get());
  out.signer = std::make_shared<const SigningKey>(
      std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free), type);
  return out;
}

// A private key's part as a secure BIGNUM: OSSL_PARAM_BLD then keeps it in the secure half
// of the parameters it builds, which OSSL_PARAM_free wipes (the other half is freed as is).
SecretBn secret_bn(std::span<const uint8_t> v) {
  SecretBn bn(BN_secure_new());
  if (bn && !BN_bin2bn(v.data(), static_cast<int>(v.size()), bn.get())) bn.reset();
  return bn;
}

}  // namespace

Result<SessionKey> generate(KeyType type) {
  CV_TRY(key, keys::generate(type));
  return finish(std::move(key), false);
}

Result<SessionKey> from_ec(KeyType curve, const SecureBytes& scalar) {
  if (!is_ec(curve)) return fail(Code::kInvalidInput, "not an EC curve");
  Group group(EC_GROUP_new_by_curve_name_ex(
      ossl::libctx(), nullptr, curve == KeyType::kEcP384 ? NID_secp384r1 : NID_X9_62_prime256v1));
  SecretBn d(secret_bn(scalar.span()));
  if (!group || !d) return ossl::crypto_fail("EC private key");
  if (BN_is_zero(d.get()) || BN_cmp(d.get(), EC_GROUP_get0_order(group.get())) >= 0)
    return fail(Code::kInvalidInput,
                "the EC private key (CKA_VALUE) is not a scalar of the curve; give the key's "
                "private value");
  // OpenSSL does not derive the public point of a key made from its scalar alone.
  Point q(EC_POINT_new(group.get()));
  ossl::Bytes point(133);
  size_t len = 0;
  if (!q || EC_POINT_mul(group.get(), q.get(), d.get(), nullptr, nullptr, nullptr) != 1 ||
      (len = EC_POINT_point2oct(group.get(), q.get(), POINT_CONVERSION_UNCOMPRESSED, point.data(),
                                point.size(), nullptr)) == 0)
    return ossl::crypto_fail("EC public key");
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group_name(curve),
                                       0) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_PRIV_KEY, d.get()) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), len))
    return ossl::crypto_fail("EC private key");
  CV_TRY(key, from_params("EC", bld.get(), EVP_PKEY_KEYPAIR, "the EC private key"));
  return finish(std::move(key), false);
}

Result<SessionKey> from_ed25519(const SecureBytes& seed) {
  if (seed.size() != 32)
    return fail(Code::kInvalidInput,
                "an Ed25519 private key (CKA_VALUE) is 32 bytes; give the key's seed");
  EVP_PKEY* key =
      EVP_PKEY_new_raw_private_key_ex(ossl::libctx(), "ED25519", nullptr, seed.data(), seed.size());
  if (!key) return ossl::crypto_fail("Ed25519 private key");
  return finish(ossl::Pkey(key), false);
}

Result<SessionKey> from_rsa(const RsaParts& r) {
  auto bn = [](std::span<const uint8_t> v) {
    return SecretBn(BN_bin2bn(v.data(), static_cast<int>(v.size()), nullptr));
  };
  SecretBn n = bn(r.n), e = bn(r.e), d = secret_bn(r.d.span()), p = secret_bn(r.p.span()),
           q = secret_bn(r.q.span()), dp = secret_bn(r.dp.span()), dq = secret_bn(r.dq.span()),
           qinv = secret_bn(r.qinv.span());
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld || !n || !e || !d || !p || !q || !dp || !dq || !qinv ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_D, d.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_FACTOR1, p.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_FACTOR2, q.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_EXPONENT1, dp.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_EXPONENT2, dq.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv.get()))
    return ossl::crypto_fail("RSA private key");
  CV_TRY(key, from_params("RSA", bld.get(), EVP_PKEY_KEYPAIR, "the RSA private key"));
  return finish(std::move(key), true);
}

Result<ossl::Pkey> public_from_ec(KeyType curve, std::span<const uint8_t> point) {
  if (!is_ec(curve)) return fail(Code::kInvalidInput, "not an EC curve");
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      !OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group_name(curve),
                                       0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                        point.size()))
    return ossl::crypto_fail("EC public key");
  CV_TRY(key, from_params("EC", bld.get(), EVP_PKEY_PUBLIC_KEY, "the EC point (CKA_EC_POINT)"));
  ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), key.get(), nullptr));
  if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1)
    return fail(Code::kInvalidInput,
                "the EC point (CKA_EC_POINT) is not on the curve; give the key's public point");
  return key;
}

Result<ossl::Pkey> public_from_ed25519(std::span<const uint8_t> raw) {
  EVP_PKEY* key = raw.size() == 32 ? EVP_PKEY_new_raw_public_key_ex(ossl::libctx(), "ED25519",
                                                                    nullptr, raw.data(), 32)
                                   : nullptr;
  if (!key)
    return fail(Code::kInvalidInput,
                "an Ed25519 public key (CKA_EC_POINT) is 32 bytes; give the key's public value");
  return ossl::Pkey(key);
}

Result<ossl::Pkey> public_from_rsa(std::span<const uint8_t> n, std::span<const uint8_t> e) {
  ossl::Bn bn_n(BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr));
  ossl::Bn bn_e(BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr));
  ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld || !bn_n || !bn_e ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) ||
      !OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()))
    return ossl::crypto_fail("RSA public key");
  CV_TRY(key, from_params("RSA", bld.get(), EVP_PKEY_PUBLIC_KEY, "the RSA public key"));
  CV_CHECK(keys::type_of(key.get()));  // a size a vault key has
  return key;
}

}  // namespace certvault::session_key

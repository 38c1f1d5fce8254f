#include "pkcs12.h"

#include <openssl/err.h>
#include <sodium.h>

#include <cstring>
#include <string>

#include "keys.h"

namespace certvault::pkcs12 {
namespace {

// OpenSSL's PKCS#12 calls take NUL-terminated passwords.
SecureBytes c_string(const SecureBytes& password) {
  SecureBytes out(password.size() + 1);  // zero-filled, so the last byte is the NUL
  std::memcpy(out.data(), password.data(), password.size());
  return out;
}

}  // namespace

SecureBytes new_password() {
  // 24 characters from 54 unambiguous symbols: about 138 bits.
  static constexpr std::string_view kAlphabet =
      "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  constexpr size_t kLength = 24;
  SecureBytes pw(kLength + 1);
  for (size_t i = 0; i < kLength; ++i)
    pw.data()[i] = static_cast<uint8_t>(
        kAlphabet[randombytes_uniform(static_cast<uint32_t>(kAlphabet.size()))]);
  pw.truncate(kLength);  // the NUL stays in the guarded region past size()
  return pw;
}

Result<ossl::Bytes> build(EVP_PKEY* key, X509* cert, STACK_OF(X509) * chain,
                          const SecureBytes& password, P12Encryption encryption,
                          std::string_view friendly_name) {
  // AES-256-CBC under PBKDF2-HMAC-SHA256 with a SHA-256 MAC; or, for old clients,
  // pbeWithSHAAnd3-KeyTripleDES-CBC with a SHA-1 MAC, which needs no legacy provider.
  const bool aes = encryption == P12Encryption::kAes256;
  const int nid = aes ? NID_aes_256_cbc : NID_pbe_WithSHA1And3_Key_TripleDES_CBC;
  const int iter = aes ? 100000 : PKCS12_DEFAULT_ITER;
  SecureBytes pass = c_string(password);
  const char* p = reinterpret_cast<const char*>(pass.data());
  std::string name(friendly_name);
  ossl::P12 p12(PKCS12_create_ex(p, name.c_str(), key, cert, chain, nid, nid, iter, -1, 0,
                                 ossl::libctx(), nullptr));
  if (!p12) return ossl::crypto_fail("cannot build the PKCS#12 file");
  ossl::Md md(EVP_MD_fetch(ossl::libctx(), aes ? "SHA256" : "SHA1", nullptr));
  if (!md || !PKCS12_set_mac(p12.get(), p, -1, nullptr, 0, iter, md.get()))
    return ossl::crypto_fail("cannot add the PKCS#12 MAC");
  int n = i2d_PKCS12(p12.get(), nullptr);
  if (n <= 0) return ossl::crypto_fail("cannot encode the PKCS#12 file");
  ossl::Bytes out(static_cast<size_t>(n));
  unsigned char* w = out.data();
  i2d_PKCS12(p12.get(), &w);
  return out;
}

Result<Contents> parse(std::span<const uint8_t> der, const SecureBytes& password,
                       std::string_view source) {
  const std::string src(source);
  const unsigned char* p = der.data();
  ossl::P12 p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  if (!p12) {
    ERR_clear_error();
    return fail(Code::kInvalidInput,
                src + " is not a PKCS#12 file; give a .p12/.pfx file or PEM certificate and key");
  }
  if (!PKCS12_mac_present(p12.get()))
    return fail(Code::kInvalidInput,
                src +
                    " has no integrity MAC, so its password cannot be checked; export it "
                    "again with a MAC (any current tool does by default)");
  SecureBytes pass = c_string(password);
  const char* pw = reinterpret_cast<const char*>(pass.data());
  int pwlen = static_cast<int>(password.size());
  if (!PKCS12_verify_mac(p12.get(), pw, pwlen)) {
    // An empty password may have been encoded as absent.
    if (!(password.empty() && PKCS12_verify_mac(p12.get(), nullptr, 0))) {
      ERR_clear_error();
      return fail(Code::kInvalidInput,
                  "wrong password for " + src + "; pass the right one with --password-file");
    }
    pw = nullptr;
  }
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  STACK_OF(X509)* chain = nullptr;
  if (!PKCS12_parse(p12.get(), pw, &key, &cert, &chain)) {
    ERR_clear_error();
    return fail(Code::kInvalidInput,
                src +
                    " uses an encryption this OpenSSL cannot read (old RC2 or DES exports); "
                    "export it again with AES-256 or 3DES");
  }
  Contents out{ossl::Pkey(key), ossl::Cert(cert), ossl::CertStack(chain)};
  if (!out.chain) out.chain.reset(sk_X509_new_null());
  if (!out.key || !out.cert)
    return fail(Code::kInvalidInput, src +
                                         " does not hold both a private key and its "
                                         "certificate; export the identity with its key");
  if (!keys::same_public(out.key.get(), X509_get0_pubkey(out.cert.get())))
    return fail(Code::kInvalidInput,
                src + ": the certificate does not belong to the private key in the same file");
  return out;
}

}  // namespace certvault::pkcs12

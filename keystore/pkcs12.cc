#include "pkcs12.h"

#include <openssl/err.h>
#include <openssl/provider.h>
#include <sodium.h>

#include <cstring>
#include <mutex>
#include <string>

#include "certificate.h"
#include "keys.h"

namespace certvault::pkcs12 {
namespace {

// OpenSSL's PKCS#12 calls take NUL-terminated passwords.
SecureBytes c_string(const SecureBytes& password) {
  SecureBytes out(password.size() + 1);  // zero-filled, so the last byte is the NUL
  std::memcpy(out.data(), password.data(), password.size());
  return out;
}

// A library context for reading old PKCS#12 files only: the default provider and the
// legacy one (RC2, RC4, DES: what older Windows and Java .pfx files use). Never used to
// sign or to write; null when the legacy provider cannot be loaded.
OSSL_LIB_CTX* legacy_reading_libctx() {
  static std::once_flag once;
  static OSSL_LIB_CTX* ctx = nullptr;
  std::call_once(once, [] {
    OSSL_LIB_CTX* c = OSSL_LIB_CTX_new();
    if (c && OSSL_PROVIDER_load(c, "default") && OSSL_PROVIDER_load(c, "legacy"))
      ctx = c;
    else
      OSSL_LIB_CTX_free(c);  // unloads what was loaded
    ERR_clear_error();
  });
  return ctx;
}

// What PKCS12_parse finds, read in `ctx` (OpenSSL 3.0's PKCS12_parse always uses the
// default context): every key and certificate bag, in the plain and the encrypted parts.
struct Bags {
  ossl::Pkey key;
  ossl::CertStack certs{sk_X509_new_null()};
};

Result<void> read_bags(const STACK_OF(PKCS12_SAFEBAG) * bags, const char* pw, int pwlen,
                       OSSL_LIB_CTX* ctx, Bags& out, int depth = 0) {
  for (int i = 0; i < sk_PKCS12_SAFEBAG_num(bags); ++i) {
    const PKCS12_SAFEBAG* bag = sk_PKCS12_SAFEBAG_value(bags, i);
    switch (PKCS12_SAFEBAG_get_nid(bag)) {
      case NID_keyBag:
      case NID_pkcs8ShroudedKeyBag: {
        if (out.key) break;  // PKCS12_parse too takes the first
        if (PKCS12_SAFEBAG_get_nid(bag) == NID_keyBag) {
          out.key.reset(EVP_PKCS82PKEY_ex(PKCS12_SAFEBAG_get0_p8inf(bag), ctx, nullptr));
        } else {
          PKCS8_PRIV_KEY_INFO* p8 = PKCS12_decrypt_skey_ex(bag, pw, pwlen, ctx, nullptr);
          if (p8 == nullptr) return fail(Code::kCrypto, "");
          out.key.reset(EVP_PKCS82PKEY_ex(p8, ctx, nullptr));
          PKCS8_PRIV_KEY_INFO_free(p8);  // clears the key's bytes
        }
        if (!out.key) return fail(Code::kCrypto, "");
        break;
      }
      case NID_certBag:
        if (PKCS12_SAFEBAG_get_bag_nid(bag) == NID_x509Certificate) {
          X509* c = PKCS12_SAFEBAG_get1_cert(bag);
          if (c == nullptr || !sk_X509_push(out.certs.get(), c)) {
            X509_free(c);
            return fail(Code::kCrypto, "");
          }
        }
        break;
      case NID_safeContentsBag:
        if (depth < 4)
          CV_CHECK(read_bags(PKCS12_SAFEBAG_get0_safes(bag), pw, pwlen, ctx, out, depth + 1));
        break;
      default:
        break;
    }
  }
  return {};
}

Result<Bags> read_in(PKCS12* p12, const char* pw, int pwlen, OSSL_LIB_CTX* ctx) {
  Bags out;
  STACK_OF(PKCS7)* safes = PKCS12_unpack_authsafes(p12);
  if (safes == nullptr) return fail(Code::kCrypto, "");
  Result<void> read;
  for (int i = 0; i < sk_PKCS7_num(safes) && read; ++i) {
    PKCS7* p7 = sk_PKCS7_value(safes, i);
    STACK_OF(PKCS12_SAFEBAG)* bags = nullptr;
    if (const int nid = OBJ_obj2nid(p7->type); nid == NID_pkcs7_data) {
      bags = PKCS12_unpack_p7data(p7);
    } else if (nid == NID_pkcs7_encrypted && p7->d.encrypted && p7->d.encrypted->enc_data &&
               p7->d.encrypted->enc_data->enc_data) {
      const PKCS7_ENC_CONTENT* enc = p7->d.encrypted->enc_data;
      bags = static_cast<STACK_OF(PKCS12_SAFEBAG)*>(
          PKCS12_item_decrypt_d2i_ex(enc->algorithm, ASN1_ITEM_rptr(PKCS12_SAFEBAGS), pw, pwlen,
                                     enc->enc_data, 1, ctx, nullptr));
    }
    if (bags == nullptr) {
      read = fail(Code::kCrypto, "");
      break;
    }
    read = read_bags(bags, pw, pwlen, ctx, out);
    sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
  }
  sk_PKCS7_pop_free(safes, PKCS7_free);
  CV_CHECK(read);
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
  Contents out;
  if (PKCS12_parse(p12.get(), pw, &key, &cert, &chain)) {
    out = Contents{ossl::Pkey(key), ossl::Cert(cert), ossl::CertStack(chain)};
    if (!out.chain) out.chain.reset(sk_X509_new_null());
  } else {
    // An older export (RC2, RC4, DES): read again with the legacy provider, in a context
    // of its own that reads and nothing else.
    ERR_clear_error();
    OSSL_LIB_CTX* legacy = legacy_reading_libctx();
    auto bags = legacy ? read_in(p12.get(), pw, pw ? pwlen : 0, legacy)
                       : Result<Bags>(fail(Code::kCrypto, ""));
    ERR_clear_error();
    if (!bags)
      return fail(Code::kInvalidInput,
                  src +
                      " uses an encryption this OpenSSL cannot read, even with its legacy "
                      "provider; export it again with AES-256 or 3DES");
    out.key = std::move(bags->key);
    out.chain.reset(sk_X509_new_null());
    // The certificate for the key, and the others as its chain, issuer first.
    X509* leaf = nullptr;
    for (int i = 0; out.key && i < sk_X509_num(bags->certs.get()); ++i)
      if (X509* c = sk_X509_value(bags->certs.get(), i);
          !leaf && keys::same_public(out.key.get(), X509_get0_pubkey(c)))
        leaf = c;
    if (leaf != nullptr) {
      const auto ordered = certificate::chain_order(leaf, bags->certs.get());
      X509_up_ref(leaf);
      out.cert.reset(leaf);
      for (size_t i = 1; i < ordered.size(); ++i)
        if (X509_up_ref(ordered[i]) == 1 && !sk_X509_push(out.chain.get(), ordered[i]))
          X509_free(ordered[i]);
    }
  }
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

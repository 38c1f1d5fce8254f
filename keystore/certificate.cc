#include "certificate.h"

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>

#include "keys.h"
#include "seal.h"

namespace certvault::certificate {

const char* md_name(EVP_PKEY* signer, Hash hash) {
  if (EVP_PKEY_is_a(signer, "ED25519")) return nullptr;  // pure EdDSA (RFC 8410)
  switch (hash) {
    case Hash::kSha256:
      return "SHA256";
    case Hash::kSha384:
      return "SHA384";
    case Hash::kSha512:
      return "SHA512";
  }
  return "SHA256";
}

namespace {

bool add_ext(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  ossl::Ext ext(X509V3_EXT_nconf_nid(nullptr, ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

Time to_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return timegm(&tm);
}

// Splits "CN=a,O=b" or "/CN=a/O=b" into attribute=value pairs; '\' escapes the separator.
Result<std::vector<std::pair<std::string, std::string>>> split_subject(std::string_view text) {
  auto bad = [&](std::string why) {
    return fail(Code::kInvalidInput, "subject '" + std::string(text) + "' " + why +
                                         "; write it as /CN=name/O=org or CN=name,O=org");
  };
  char sep = ',';
  if (!text.empty() && text.front() == '/') {
    sep = '/';
    text.remove_prefix(1);
  }
  std::vector<std::pair<std::string, std::string>> out;
  std::string part;
  auto flush = [&]() -> Result<void> {
    size_t b = part.find_first_not_of(' ');
    if (b == std::string::npos) return bad("has an empty part");
    part.erase(0, b);
    size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0) return bad("has a part without attribute=value");
    std::string key = part.substr(0, eq);
    while (!key.empty() && key.back() == ' ') key.pop_back();
    std::string value = part.substr(eq + 1);
    if (value.empty()) return bad("has an empty value for " + key);
    out.emplace_back(std::move(key), std::move(value));
    part.clear();
    return {};
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (static_cast<unsigned char>(c) < 0x20) return bad("contains a control character");
    if (c == '\\' && i + 1 < text.size()) {
      part += text[++i];
    } else if (c == sep) {
      CV_CHECK(flush());
    } else {
      part += c;
    }
  }
  CV_CHECK(flush());
  return out;
}

}  // namespace

Result<ossl::Name> parse_subject(std::string_view text) {
  CV_TRY(parts, split_subject(text));
  // RFC 4514 writes the most specific RDN first ("CN=a,O=b"); the "/O=b/CN=a" form and
  // the certificate itself go from the least specific.
  if (!text.starts_with('/')) std::reverse(parts.begin(), parts.end());
  ossl::Name name(X509_NAME_new());
  for (const auto& [key, value] : parts) {
    if (OBJ_txt2nid(key.c_str()) == NID_undef)
      return fail(Code::kInvalidInput, "subject attribute '" + key +
                                           "' is unknown; use CN, O, OU, L, ST, C, emailAddress");
    if (!X509_NAME_add_entry_by_txt(name.get(), key.c_str(), MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), -1, 0)) {
      ERR_clear_error();
      return fail(Code::kInvalidInput, "subject value for " + key + " is not acceptable ('" +
                                           value + "'); check its length and characters");
    }
  }
  return name;
}

ossl::Name common_name(std::string_view cn) {
  ossl::Name name(X509_NAME_new());
  X509_NAME_add_entry_by_txt(name.get(), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.data()),
                             static_cast<int>(cn.size()), -1, 0);
  return name;
}

Result<ossl::Cert> issue(const IssueArgs& a) {
  ossl::Cert cert(X509_new_ex(ossl::libctx(), nullptr));
  ossl::Bn serial(BN_new());
  // 128 random bits with the top bit set: always positive, always 17 DER bytes.
  if (!cert || !serial ||
      !BN_rand_ex(serial.get(), 128, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY, 0, nullptr))
    return ossl::crypto_fail("cannot draw a serial number");
  Time now_t = now();
  if (!X509_set_version(cert.get(), X509_VERSION_3) ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get())) ||
      !ASN1_TIME_set(X509_getm_notBefore(cert.get()), now_t - kBackdate) ||
      !ASN1_TIME_set(X509_getm_notAfter(cert.get()), a.not_after) ||
      !X509_set_subject_name(cert.get(), a.subject) ||
      !X509_set_issuer_name(cert.get(), a.issuer ? X509_get_subject_name(a.issuer) : a.subject) ||
      !X509_set_pubkey(cert.get(), a.subject_key))
    return ossl::crypto_fail("cannot build the certificate");

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, a.issuer ? a.issuer : cert.get(), cert.get(), nullptr, nullptr, 0);
  bool ok = true;
  if (a.profile == Profile::kClient) {
    ok = add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(cert.get(), &ctx, NID_key_usage, "critical,digitalSignature") &&
         add_ext(cert.get(), &ctx, NID_ext_key_usage, "clientAuth");
  } else {
    ok = add_ext(cert.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
         add_ext(cert.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
  }
  ok = ok && add_ext(cert.get(), &ctx, NID_subject_key_identifier, "hash") &&
       add_ext(cert.get(), &ctx, NID_authority_key_identifier, "keyid:always");
  if (a.alt_names != nullptr)
    ok = ok && X509_add_ext(cert.get(), const_cast<X509_EXTENSION*>(a.alt_names), -1) == 1;
  if (!ok) return ossl::crypto_fail("cannot add certificate extensions");

  ossl::MdCtx md(EVP_MD_CTX_new());
  if (!md ||
      EVP_DigestSignInit_ex(md.get(), nullptr, md_name(a.signer, a.hash), ossl::libctx(), nullptr,
                            a.signer, nullptr) != 1 ||
      X509_sign_ctx(cert.get(), md.get()) <= 0)
    return ossl::crypto_fail("cannot sign the certificate");
  return cert;
}

Result<std::string> make_csr(EVP_PKEY* key, X509_NAME* subject, Hash hash,
                             const X509_EXTENSION* alt_names) {
  ossl::Req req(X509_REQ_new_ex(ossl::libctx(), nullptr));
  if (!req || !X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) ||
      !X509_REQ_set_subject_name(req.get(), subject) || !X509_REQ_set_pubkey(req.get(), key))
    return ossl::crypto_fail("cannot build the certificate request");
  // Ask for the client profile; the CA decides what it grants.
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, nullptr, nullptr, req.get(), nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                            std::pair{NID_key_usage, "critical,digitalSignature"},
                            std::pair{NID_ext_key_usage, "clientAuth"}}) {
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
    if (ext) sk_X509_EXTENSION_push(exts, ext);
  }
  if (alt_names != nullptr) {
    X509_EXTENSION* san = X509_EXTENSION_dup(alt_names);
    if (san == nullptr || !sk_X509_EXTENSION_push(exts, san)) {
      X509_EXTENSION_free(san);
      sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
      return ossl::crypto_fail("cannot copy the subject alternative names");
    }
  }
  X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  ossl::MdCtx md(EVP_MD_CTX_new());
  if (!md ||
      EVP_DigestSignInit_ex(md.get(), nullptr, md_name(key, hash), ossl::libctx(), nullptr, key,
                            nullptr) != 1 ||
      X509_REQ_sign_ctx(req.get(), md.get()) <= 0)
    return ossl::crypto_fail("cannot sign the certificate request");
  return ossl::to_text([&](BIO* b) { PEM_write_bio_X509_REQ(b, req.get()); });
}

Result<ossl::Ext> parse_alt_names(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return fail(Code::kInvalidInput,
                "subject alternative names '" + std::string(text) + "' " + why +
                    "; write it as DNS:name,URI:spiffe://...,email:address,IP:address");
  };
  if (text.empty()) return ossl::Ext();  // none
  // Only the names a client certificate carries; OpenSSL's parser knows more (dirName,
  // otherName...), which would need a configuration file.
  for (size_t start = 0; start <= text.size();) {
    const size_t end = std::min(text.find(',', start), text.size());
    std::string_view item = text.substr(start, end - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const bool known = std::ranges::any_of(
        std::array<std::string_view, 4>{"DNS:", "URI:", "email:", "IP:"},
        [&](std::string_view type) { return item.starts_with(type) && item.size() > type.size(); });
    if (!known) return bad("has '" + std::string(item) + "', not a DNS, URI, email or IP name");
    start = end + 1;
  }
  const std::string value(text);
  ossl::Ext ext(X509V3_EXT_nconf_nid(nullptr, nullptr, NID_subject_alt_name, value.c_str()));
  if (!ext) {
    ERR_clear_error();
    return bad("is not a list of names OpenSSL accepts (an IP address or URI may be malformed)");
  }
  return ext;
}

ossl::Ext alt_names_of(const X509* cert) {
  const int at = X509_get_ext_by_NID(cert, NID_subject_alt_name, -1);
  return ossl::Ext(at >= 0 ? X509_EXTENSION_dup(X509_get_ext(cert, at)) : nullptr);
}

std::string name_text(const X509_NAME* name) {
  return ossl::to_text([&](BIO* b) { X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253); });
}

Facts facts(X509* cert) {
  Facts f;
  ossl::Bn serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    f.serial = hex ? hex : "";
    OPENSSL_free(hex);
  }
  f.subject = name_text(X509_get_subject_name(cert));
  f.issuer = name_text(X509_get_issuer_name(cert));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ossl::Md sha256(EVP_MD_fetch(ossl::libctx(), "SHA256", nullptr));
  if (sha256 && X509_digest(cert, sha256.get(), digest, &len))
    f.fingerprint = seal::to_hex({digest, len});
  if (EVP_PKEY* pub = X509_get0_pubkey(cert)) f.key_id = keys::key_id(pub);
  f.not_before = to_time(X509_get0_notBefore(cert));
  f.not_after = to_time(X509_get0_notAfter(cert));
  f.is_ca = X509_check_ca(cert) != 0;
  f.self_issued = X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) == 0;
  ERR_clear_error();
  return f;
}

std::optional<Hash> signature_hash(X509* cert) {
  int md_nid = NID_undef, pk_nid = NID_undef;
  if (!X509_get_signature_info(cert, &md_nid, &pk_nid, nullptr, nullptr)) return {};
  switch (md_nid) {
    case NID_sha256:
      return Hash::kSha256;
    case NID_sha384:
      return Hash::kSha384;
    case NID_sha512:
      return Hash::kSha512;
    default:
      return {};
  }
}

Result<ossl::CertStack> certs_from_pem(std::string_view pem) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  ossl::CertStack out(sk_X509_new_null());
  for (;;) {
    X509* cert = X509_new_ex(ossl::libctx(), nullptr);
    if (!PEM_read_bio_X509(bio.get(), &cert, nullptr, nullptr)) {
      X509_free(cert);
      break;
    }
    sk_X509_push(out.get(), cert);
  }
  ERR_clear_error();
  return out;
}

namespace {

// The certificates a PKCS#7 SignedData carries (a .p7b holds nothing else).
ossl::CertStack certs_of(PKCS7* p7) {
  ossl::CertStack out(sk_X509_new_null());
  if (p7 == nullptr || OBJ_obj2nid(p7->type) != NID_pkcs7_signed || p7->d.sign == nullptr)
    return out;
  STACK_OF(X509)* certs = p7->d.sign->cert;
  for (int i = 0; i < sk_X509_num(certs); ++i) {
    X509* c = sk_X509_value(certs, i);
    if (X509_up_ref(c) == 1 && !sk_X509_push(out.get(), c)) X509_free(c);
  }
  return out;
}

}  // namespace

Result<ossl::CertStack> certs_from_any(std::string_view data) {
  if (data.find("-----BEGIN") != std::string_view::npos) {
    CV_TRY(certs, certs_from_pem(data));
    if (sk_X509_num(certs.get()) > 0) return certs;
    ossl::Bio bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
    PKCS7* p7 = PEM_read_bio_PKCS7(bio.get(), nullptr, nullptr, nullptr);
    ERR_clear_error();
    ossl::CertStack out = certs_of(p7);
    PKCS7_free(p7);
    return out;
  }
  const auto* begin = reinterpret_cast<const unsigned char*>(data.data());
  const long size = static_cast<long>(data.size());
  const unsigned char* p = begin;
  X509* one = X509_new_ex(ossl::libctx(), nullptr);
  // A .cer file may end with a line break or padding after the certificate.
  auto only_padding = [&](const unsigned char* from) {
    return std::all_of(from, begin + size, [](unsigned char c) { return std::isspace(c) || !c; });
  };
  if (one != nullptr && d2i_X509(&one, &p, size) != nullptr && only_padding(p)) {
    ossl::CertStack out(sk_X509_new_null());
    if (sk_X509_push(out.get(), one)) return out;
  }
  X509_free(one);
  p = begin;
  PKCS7* p7 = d2i_PKCS7(nullptr, &p, size);
  ERR_clear_error();
  ossl::CertStack out = certs_of(p7);
  PKCS7_free(p7);
  return out;
}

std::vector<X509*> chain_order(X509* leaf, STACK_OF(X509) * others) {
  std::vector<X509*> rest;
  for (int i = 0; i < sk_X509_num(others); ++i)
    if (X509* c = sk_X509_value(others, i); c != leaf) rest.push_back(c);
  std::vector<X509*> out{leaf};
  for (bool found = true; found && !rest.empty();) {
    found = false;
    for (auto it = rest.begin(); it != rest.end(); ++it) {
      if (X509_check_issued(*it, out.back()) == X509_V_OK) {
        out.push_back(*it);
        rest.erase(it);
        found = true;
        break;
      }
    }
  }
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

Result<ossl::Pkey> private_key_from_pem(std::string_view pem) {
  ossl::Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  // No passphrase callback: an encrypted PEM key is refused rather than prompted for.
  static constexpr auto no_pass = [](char*, int, int, void*) { return -1; };
  ossl::Pkey key(
      PEM_read_bio_PrivateKey_ex(bio.get(), nullptr, +no_pass, nullptr, ossl::libctx(), nullptr));
  ERR_clear_error();
  if (!key)
    return fail(Code::kInvalidInput,
                "no unencrypted private key found in the PEM input; give a PEM file holding "
                "the certificate and its unencrypted key, or a PKCS#12 file");
  return key;
}

}  // namespace certvault::certificate

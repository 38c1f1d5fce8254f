#include "attributes.h"

#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/sha.h>

#include <cstring>
#include <ctime>

#include "mechanisms.h"
#include "ossl.h"
#include "seal.h"

namespace certvault::pkcs11 {
namespace {

using Value = std::optional<Bytes>;

template <typename T>
Bytes pod(const T& v) {
  Bytes out(sizeof v);
  std::memcpy(out.data(), &v, sizeof v);
  return out;
}
Bytes flag(bool b) {
  return pod(static_cast<CK_BBOOL>(b ? CK_TRUE : CK_FALSE));
}
Bytes ulong(CK_ULONG v) {
  return pod(v);
}
Bytes text(std::string_view s) {
  return Bytes(s.begin(), s.end());
}

Bytes date(Time t) {
  if (t == 0) return {};  // a key still waiting for its certificate has no dates yet
  time_t tt = static_cast<time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  CK_DATE d;
  std::memcpy(d.year, buf, 4);
  std::memcpy(d.month, buf + 4, 2);
  std::memcpy(d.day, buf + 6, 2);
  return pod(d);
}

Bytes octet_string(const Bytes& content) {
  ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(os, content.data(), static_cast<int>(content.size()));
  Bytes out = ossl::to_der<ASN1_OCTET_STRING, i2d_ASN1_OCTET_STRING>(os);
  ASN1_OCTET_STRING_free(os);
  return out;
}

Bytes oid(const char* dotted) {
  ASN1_OBJECT* o = OBJ_txt2obj(dotted, 1);
  Bytes out = ossl::to_der<ASN1_OBJECT, i2d_ASN1_OBJECT>(o);
  ASN1_OBJECT_free(o);
  return out;
}

Value bn_param(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (!key || !EVP_PKEY_get_bn_param(key, name, &bn)) return std::nullopt;
  Bytes out(static_cast<size_t>(BN_num_bytes(bn)));
  BN_bn2bin(bn, out.data());
  BN_free(bn);
  return out;
}

CK_KEY_TYPE ck_key_type(KeyType t) {
  switch (t) {
    case KeyType::kEcP256:
    case KeyType::kEcP384:
      return CKK_EC;
    case KeyType::kEd25519:
      return CKK_EC_EDWARDS;
    default:
      return CKK_RSA;
  }
}

bool is_rsa(const Source& s) {
  return ck_key_type(s.object.key_type) == CKK_RSA;
}

// --- readers -----------------------------------------------------------------------------

Value label(const Source& s) {
  return text(s.object.nickname);
}
Value id(const Source& s) {
  // A session object made without CKA_ID has an empty one (v3.0 4.7: the default).
  if (s.object.key_id.empty()) return Bytes();
  return seal::from_hex(s.object.key_id).value_or(Bytes());
}
Value unique_id(const Source& s) {
  return text(s.object.unique_id);  // v3.0 4.4.1
}
Value start_date(const Source& s) {
  return date(s.object.not_before);
}
Value end_date(const Source& s) {
  return date(s.object.not_after);
}
Value subject(const Source& s) {
  if (!s.x509) return std::nullopt;  // a key that waits for its certificate
  return ossl::to_der<X509_NAME, i2d_X509_NAME>(X509_get_subject_name(s.x509));
}
Value public_key_info(const Source& s) {
  return s.spki;
}

// Certificates (v3.0 4.6).
Value certificate_type(const Source&) {
  return ulong(CKC_X_509);
}
Value category_of_entry(const Source&) {
  return ulong(1);  // token user
}
Value category_of_authority(const Source&) {
  return ulong(2);  // authority
}
Value check_value(const Source& s) {
  unsigned char sha1[SHA_DIGEST_LENGTH];
  SHA1(s.cert.data(), s.cert.size(), sha1);
  return Bytes(sha1, sha1 + 3);
}
Value issuer(const Source& s) {
  return ossl::to_der<X509_NAME, i2d_X509_NAME>(X509_get_issuer_name(s.x509));
}
Value serial_number(const Source& s) {
  return ossl::to_der<ASN1_INTEGER, i2d_ASN1_INTEGER>(X509_get0_serialNumber(s.x509));
}
Value certificate_value(const Source& s) {
  return s.cert;
}
Value no_url(const Source&) {
  return Bytes();
}
Value no_security_domain(const Source&) {
  return ulong(0);
}

// Keys (v3.0 4.7 to 4.9; EC and RSA attributes, current mechanisms 2.1 and 2.3).
Value key_type(const Source& s) {
  return ulong(ck_key_type(s.object.key_type));
}
Value local(const Source& s) {
  return flag(!s.object.key_imported);  // v3.0 4.7: generated in the token
}
Value key_gen_mechanism(const Source& s) {
  const Object& o = s.object;
  return ulong(o.key_imported                      ? CK_UNAVAILABLE_INFORMATION
               : o.key_type == KeyType::kEd25519   ? CKM_EC_EDWARDS_KEY_PAIR_GEN
               : ck_key_type(o.key_type) == CKK_EC ? CKM_EC_KEY_PAIR_GEN
                                                   : CKM_RSA_PKCS_KEY_PAIR_GEN);
}
Value allowed_mechanisms(const Source& s) {
  auto mechs = sign_mechanisms(s.object.key_type);
  Bytes allowed(mechs.size() * sizeof(CK_MECHANISM_TYPE));
  std::memcpy(allowed.data(), mechs.data(), allowed.size());
  return allowed;
}
Value ec_params(const Source& s) {
  if (!s.pub || is_rsa(s)) return std::nullopt;
  switch (s.object.key_type) {
    case KeyType::kEd25519:
      return oid("1.3.101.112");  // id-Ed25519, RFC 8410
    case KeyType::kEcP256:
      return oid("1.2.840.10045.3.1.7");
    default:
      return oid("1.3.132.0.34");
  }
}
Value ec_point(const Source& s) {
  if (!s.pub || is_rsa(s)) return std::nullopt;
  Bytes point(s.object.key_type == KeyType::kEd25519 ? 32 : 256);
  size_t len = s.object.key_type == KeyType::kEd25519 ? point.size() : 0;
  if (s.object.key_type == KeyType::kEd25519)
    EVP_PKEY_get_raw_public_key(s.pub, point.data(), &len);
  else
    EVP_PKEY_get_octet_string_param(s.pub, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(),
                                    point.size(), &len);
  point.resize(len);
  return octet_string(point);
}
Value modulus(const Source& s) {
  return is_rsa(s) ? bn_param(s.pub, OSSL_PKEY_PARAM_RSA_N) : std::nullopt;
}
Value public_exponent(const Source& s) {
  return is_rsa(s) ? bn_param(s.pub, OSSL_PKEY_PARAM_RSA_E) : std::nullopt;
}
Value modulus_bits(const Source& s) {
  if (!s.pub || !is_rsa(s)) return std::nullopt;
  return ulong(static_cast<CK_ULONG>(EVP_PKEY_get_bits(s.pub)));
}
// Through the agent a private key is not a private object: no one logs in, and the key is
// not in the program (docs/pkcs11.md, With the agent).
Value private_key_private(const Source& s) {
  return flag(!s.through_agent);
}
// v3.0 4.9: a key that was ever outside the token (imported, or exported as PKCS#12 by
// `certvault export`) was not always sensitive and has been extracted.
Value kept_inside(const Source& s) {
  return flag(!s.object.key_imported && !s.object.exported);
}

// Session objects and data objects: what their templates chose.
Value object_private(const Source& s) {
  return flag(s.object.private_object);
}
Value object_modifiable(const Source& s) {
  return flag(s.object.modifiable);
}
Value object_destroyable(const Source& s) {
  return flag(s.object.destroyable);
}
Value session_category(const Source& s) {
  return ulong(s.object.category);
}
Value given_subject(const Source& s) {
  return s.object.subject;
}
// v3.0 4.9: a session key made by C_GenerateKeyPair never left the module; one given by value
// did not start inside it.
Value session_kept_inside(const Source& s) {
  return flag(!s.object.key_imported);
}
Value application(const Source& s) {
  return text(s.object.application);
}
Value object_id(const Source& s) {
  return s.object.object_id;
}

Value profile_id(const Source&) {
  return ulong(CKP_AUTHENTICATION_TOKEN);
}

// Rows shared by several tables. `class_of` rows carry the class as their reader.
template <CK_OBJECT_CLASS C>
Value class_value(const Source&) {
  return ulong(C);
}

// --- the tables --------------------------------------------------------------------------

// v3.0 4.6: an entry's X.509 certificate. C_CreateObject gives a waiting key its certificate.
const Attribute kCertificate[] = {
    {CKA_CLASS, Given::kClass, {}, class_value<CKO_CERTIFICATE>, true},
    {CKA_TOKEN, Given::kDefault, true, nullptr, true},
    {CKA_PRIVATE, Given::kDefault, false, nullptr, true},
    {CKA_MODIFIABLE, Given::kDefault, true},  // renamed by its label
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kNever, false},  // with its entry's private key only
    {CKA_LABEL, Given::kLabel, {}, label, true},
    {CKA_UNIQUE_ID, Given::kReadOnly, {}, unique_id, true},
    {CKA_ID, Given::kValue, {}, id, true},
    {CKA_CERTIFICATE_TYPE, Given::kValue, {}, certificate_type},
    {CKA_TRUSTED, Given::kDefault, false},
    {CKA_CERTIFICATE_CATEGORY, Given::kValue, {}, category_of_entry},
    {CKA_CHECK_VALUE, Given::kNever, {}, check_value},
    {CKA_START_DATE, Given::kNever, {}, start_date},
    {CKA_END_DATE, Given::kNever, {}, end_date},
    {CKA_SUBJECT, Given::kValue, {}, subject},
    {CKA_ISSUER, Given::kValue, {}, issuer},
    {CKA_SERIAL_NUMBER, Given::kValue, {}, serial_number},
    {CKA_VALUE, Given::kValue, {}, certificate_value},
    {CKA_URL, Given::kNever, {}, no_url},
    {CKA_JAVA_MIDP_SECURITY_DOMAIN, Given::kNever, {}, no_security_domain},
    {CKA_PUBLIC_KEY_INFO, Given::kNever, {}, public_key_info},
};

// The vault CA's certificate: managed with `certvault ca` only.
const Attribute kCaCertificate[] = {
    {CKA_CLASS, Given::kNever, {}, class_value<CKO_CERTIFICATE>, true},
    {CKA_TOKEN, Given::kNever, true, nullptr, true},
    {CKA_PRIVATE, Given::kNever, false, nullptr, true},
    {CKA_MODIFIABLE, Given::kNever, false},
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kNever, false},
    {CKA_LABEL, Given::kNever, {}, label, true},
    {CKA_UNIQUE_ID, Given::kNever, {}, unique_id, true},
    {CKA_ID, Given::kNever, {}, id, true},
    {CKA_CERTIFICATE_TYPE, Given::kNever, {}, certificate_type},
    {CKA_TRUSTED, Given::kNever, false},
    {CKA_CERTIFICATE_CATEGORY, Given::kNever, {}, category_of_authority},
    {CKA_CHECK_VALUE, Given::kNever, {}, check_value},
    {CKA_START_DATE, Given::kNever, {}, start_date},
    {CKA_END_DATE, Given::kNever, {}, end_date},
    {CKA_SUBJECT, Given::kNever, {}, subject},
    {CKA_ISSUER, Given::kNever, {}, issuer},
    {CKA_SERIAL_NUMBER, Given::kNever, {}, serial_number},
    {CKA_VALUE, Given::kNever, {}, certificate_value},
    {CKA_URL, Given::kNever, {}, no_url},
    {CKA_JAVA_MIDP_SECURITY_DOMAIN, Given::kNever, {}, no_security_domain},
    {CKA_PUBLIC_KEY_INFO, Given::kNever, {}, public_key_info},
};

// v3.0 4.8: an entry's public key. C_GenerateKeyPair's public-key template.
const Attribute kPublicKey[] = {
    {CKA_CLASS, Given::kClass, {}, class_value<CKO_PUBLIC_KEY>, true},
    {CKA_KEY_TYPE, Given::kKeyType, {}, key_type},
    {CKA_TOKEN, Given::kDefault, true, nullptr, true},
    {CKA_PRIVATE, Given::kDefault, false, nullptr, true},
    {CKA_MODIFIABLE, Given::kDefault, true},  // renamed by its label
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kNever, false},  // with its entry's private key only
    {CKA_LABEL, Given::kLabel, {}, label, true},
    {CKA_UNIQUE_ID, Given::kReadOnly, {}, unique_id, true},
    {CKA_ID, Given::kReadOnly, {}, id, true},
    {CKA_START_DATE, Given::kNever, {}, start_date},
    {CKA_END_DATE, Given::kNever, {}, end_date},
    {CKA_DERIVE, Given::kUsage, false},
    {CKA_LOCAL, Given::kNever, {}, local},
    {CKA_KEY_GEN_MECHANISM, Given::kNever, {}, key_gen_mechanism},
    {CKA_ALLOWED_MECHANISMS, Given::kNever, {}, allowed_mechanisms},
    {CKA_PUBLIC_KEY_INFO, Given::kNever, {}, public_key_info},
    {CKA_SUBJECT, Given::kNever, {}, subject},
    {CKA_ENCRYPT, Given::kUsage, false},
    {CKA_VERIFY, Given::kDefault, true},
    {CKA_VERIFY_RECOVER, Given::kUsage, false},
    {CKA_WRAP, Given::kUsage, false},
    {CKA_TRUSTED, Given::kNever, false},
    {CKA_EC_PARAMS, Given::kValue, {}, ec_params},
    {CKA_EC_POINT, Given::kNever, {}, ec_point},
    {CKA_MODULUS, Given::kNever, {}, modulus},
    {CKA_MODULUS_BITS, Given::kValue, {}, modulus_bits},
    {CKA_PUBLIC_EXPONENT, Given::kValue, {}, public_exponent},
};

// v3.0 4.9: an entry's private key. C_GenerateKeyPair's private-key template. Its secret
// parts stay in the vault (or the agent): sensitive, never read.
const Attribute kPrivateKey[] = {
    {CKA_CLASS, Given::kClass, {}, class_value<CKO_PRIVATE_KEY>, true},
    {CKA_KEY_TYPE, Given::kKeyType, {}, key_type},
    {CKA_TOKEN, Given::kDefault, true, nullptr, true},
    {CKA_PRIVATE, Given::kDefault, true, private_key_private, true},
    {CKA_MODIFIABLE, Given::kDefault, true},  // renamed by its label
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kNever, true},  // deletes the entry
    {CKA_LABEL, Given::kLabel, {}, label, true},
    {CKA_UNIQUE_ID, Given::kReadOnly, {}, unique_id, true},
    {CKA_ID, Given::kReadOnly, {}, id, true},
    {CKA_START_DATE, Given::kNever, {}, start_date},
    {CKA_END_DATE, Given::kNever, {}, end_date},
    {CKA_DERIVE, Given::kUsage, false},
    {CKA_LOCAL, Given::kNever, {}, local},
    {CKA_KEY_GEN_MECHANISM, Given::kNever, {}, key_gen_mechanism},
    {CKA_ALLOWED_MECHANISMS, Given::kNever, {}, allowed_mechanisms},
    {CKA_PUBLIC_KEY_INFO, Given::kNever, {}, public_key_info},
    {CKA_SUBJECT, Given::kNever, {}, subject},
    {CKA_SENSITIVE, Given::kDefault, true},
    {CKA_DECRYPT, Given::kUsage, false},
    {CKA_SIGN, Given::kDefault, true},
    {CKA_SIGN_RECOVER, Given::kUsage, false},
    {CKA_UNWRAP, Given::kUsage, false},
    {CKA_EXTRACTABLE, Given::kDefault, false},
    {CKA_ALWAYS_SENSITIVE, Given::kNever, {}, kept_inside},
    {CKA_NEVER_EXTRACTABLE, Given::kNever, {}, kept_inside},
    {CKA_WRAP_WITH_TRUSTED, Given::kNever, false},
    {CKA_ALWAYS_AUTHENTICATE, Given::kDefault, false},
    // A private key object carries the curve, not the point.
    {CKA_EC_PARAMS, Given::kNever, {}, ec_params},
    {CKA_MODULUS, Given::kNever, {}, modulus},
    {CKA_MODULUS_BITS, Given::kNever, {}, modulus_bits},
    {CKA_PUBLIC_EXPONENT, Given::kNever, {}, public_exponent},
    {CKA_VALUE, Given::kNever, {}, nullptr, false, true},
    {CKA_PRIVATE_EXPONENT, Given::kNever, {}, nullptr, false, true},
    {CKA_PRIME_1, Given::kNever, {}, nullptr, false, true},
    {CKA_PRIME_2, Given::kNever, {}, nullptr, false, true},
    {CKA_EXPONENT_1, Given::kNever, {}, nullptr, false, true},
    {CKA_EXPONENT_2, Given::kNever, {}, nullptr, false, true},
    {CKA_COEFFICIENT, Given::kNever, {}, nullptr, false, true},
};

// v3.0 4.13: the profile the token implements. 4.13 lists CKA_PROFILE_ID "in addition to the
// common attributes"; the module's choice is the common object attribute (4.2, CKA_CLASS) and
// the profile, nothing more: no CKA_TOKEN, CKA_LABEL or CKA_UNIQUE_ID (docs/pkcs11.md).
const Attribute kProfile[] = {
    {CKA_CLASS, Given::kNever, {}, class_value<CKO_PROFILE>, true},
    {CKA_PROFILE_ID, Given::kNever, {}, profile_id, true},
};

// v3.0 4.5: a data object kept in the vault. The vault stores it unchangeable (its value is a
// file named by its hash): CKA_MODIFIABLE false; destroy it and make it again to change it.
// Its CKA_VALUE is read from the vault when asked for (token.cc), never kept in the table.
const Attribute kData[] = {
    {CKA_CLASS, Given::kClass, {}, class_value<CKO_DATA>, true},
    {CKA_TOKEN, Given::kDefault, true, nullptr, true},
    {CKA_PRIVATE, Given::kFlag, {}, object_private, true},
    {CKA_MODIFIABLE, Given::kDefault, false},
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kDefault, true},
    {CKA_LABEL, Given::kLabel, {}, label, true},
    {CKA_UNIQUE_ID, Given::kReadOnly, {}, unique_id, true},
    {CKA_APPLICATION, Given::kValue, {}, application, true},
    {CKA_OBJECT_ID, Given::kValue, {}, object_id, true},
    {CKA_VALUE, Given::kValue, {}},
};

// Session objects (CKA_TOKEN false): what the application gave, kept in this process.

// v3.0 4.5: a session data object; its CKA_VALUE is kept in guarded memory (token.cc).
const Attribute kSessionData[] = {
    {CKA_CLASS, Given::kClass, {}, class_value<CKO_DATA>, true},
    {CKA_TOKEN, Given::kDefault, false, nullptr, true},
    {CKA_PRIVATE, Given::kFlag, {}, object_private, true},
    {CKA_MODIFIABLE, Given::kFlag, {}, object_modifiable},
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kFlag, {}, object_destroyable},
    {CKA_LABEL, Given::kLabel, {}, label, true},
    {CKA_UNIQUE_ID, Given::kReadOnly, {}, unique_id, true},
    {CKA_APPLICATION, Given::kChangeable, {}, application, true},
    {CKA_OBJECT_ID, Given::kChangeable, {}, object_id, true},
    {CKA_VALUE, Given::kChangeable, {}},
};

// v3.0 4.6.3: a session X.509 certificate.
const Attribute kSessionCertificate[] = {
    {CKA_CLASS, Given::kClass, {}, class_value<CKO_CERTIFICATE>, true},
    {CKA_TOKEN, Given::kDefault, false, nullptr, true},
    {CKA_PRIVATE, Given::kFlag, {}, object_private, true},
    {CKA_MODIFIABLE, Given::kFlag, {}, object_modifiable},
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kFlag, {}, object_destroyable},
    {CKA_LABEL, Given::kLabel, {}, label, true},
    {CKA_UNIQUE_ID, Given::kReadOnly, {}, unique_id, true},
    {CKA_ID, Given::kChangeable, {}, id, true},
    {CKA_CERTIFICATE_TYPE, Given::kValue, {}, certificate_type},
    {CKA_TRUSTED, Given::kDefault, false},  // only the security officer may set it (4.6.2)
    {CKA_CERTIFICATE_CATEGORY, Given::kValue, {}, session_category},
    {CKA_CHECK_VALUE, Given::kNever, {}, check_value},
    {CKA_START_DATE, Given::kNever, {}, start_date},
    {CKA_END_DATE, Given::kNever, {}, end_date},
    {CKA_SUBJECT, Given::kValue, {}, subject},
    {CKA_ISSUER, Given::kValue, {}, issuer},
    {CKA_SERIAL_NUMBER, Given::kValue, {}, serial_number},
    {CKA_VALUE, Given::kValue, {}, certificate_value},
    {CKA_URL, Given::kNever, {}, no_url},
    {CKA_JAVA_MIDP_SECURITY_DOMAIN, Given::kNever, {}, no_security_domain},
    {CKA_PUBLIC_KEY_INFO, Given::kNever, {}, public_key_info},
};

// v3.0 4.8: a session public key, generated or given by value.
const Attribute kSessionPublicKey[] = {
    {CKA_CLASS, Given::kClass, {}, class_value<CKO_PUBLIC_KEY>, true},
    {CKA_KEY_TYPE, Given::kKeyType, {}, key_type},
    {CKA_TOKEN, Given::kDefault, false, nullptr, true},
    {CKA_PRIVATE, Given::kFlag, {}, object_private, true},
    {CKA_MODIFIABLE, Given::kFlag, {}, object_modifiable},
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kFlag, {}, object_destroyable},
    {CKA_LABEL, Given::kLabel, {}, label, true},
    {CKA_UNIQUE_ID, Given::kReadOnly, {}, unique_id, true},
    {CKA_ID, Given::kChangeable, {}, id, true},
    {CKA_START_DATE, Given::kNever, {}, start_date},
    {CKA_END_DATE, Given::kNever, {}, end_date},
    {CKA_DERIVE, Given::kUsage, false},
    {CKA_LOCAL, Given::kNever, {}, local},
    {CKA_KEY_GEN_MECHANISM, Given::kNever, {}, key_gen_mechanism},
    {CKA_ALLOWED_MECHANISMS, Given::kNever, {}, allowed_mechanisms},
    {CKA_PUBLIC_KEY_INFO, Given::kNever, {}, public_key_info},
    {CKA_SUBJECT, Given::kChangeable, {}, given_subject},
    {CKA_ENCRYPT, Given::kUsage, false},
    {CKA_VERIFY, Given::kDefault, true},
    {CKA_VERIFY_RECOVER, Given::kUsage, false},
    {CKA_WRAP, Given::kUsage, false},
    {CKA_TRUSTED, Given::kNever, false},
    {CKA_EC_PARAMS, Given::kValue, {}, ec_params},
    {CKA_EC_POINT, Given::kValue, {}, ec_point},
    {CKA_MODULUS, Given::kValue, {}, modulus},
    {CKA_MODULUS_BITS, Given::kValue, {}, modulus_bits},
    {CKA_PUBLIC_EXPONENT, Given::kValue, {}, public_exponent},
};

// v3.0 4.9: a session private key, generated or given by value. Its secret parts go to the
// keystore (session_key.h) and are never read back: sensitive and never extractable, as a
// vault key is.
const Attribute kSessionPrivateKey[] = {
    {CKA_CLASS, Given::kClass, {}, class_value<CKO_PRIVATE_KEY>, true},
    {CKA_KEY_TYPE, Given::kKeyType, {}, key_type},
    {CKA_TOKEN, Given::kDefault, false, nullptr, true},
    {CKA_PRIVATE, Given::kFlag, {}, object_private, true},
    {CKA_MODIFIABLE, Given::kFlag, {}, object_modifiable},
    {CKA_COPYABLE, Given::kNever, false},
    {CKA_DESTROYABLE, Given::kFlag, {}, object_destroyable},
    {CKA_LABEL, Given::kLabel, {}, label, true},
    {CKA_UNIQUE_ID, Given::kReadOnly, {}, unique_id, true},
    {CKA_ID, Given::kChangeable, {}, id, true},
    {CKA_START_DATE, Given::kNever, {}, start_date},
    {CKA_END_DATE, Given::kNever, {}, end_date},
    {CKA_DERIVE, Given::kUsage, false},
    {CKA_LOCAL, Given::kNever, {}, local},
    {CKA_KEY_GEN_MECHANISM, Given::kNever, {}, key_gen_mechanism},
    {CKA_ALLOWED_MECHANISMS, Given::kNever, {}, allowed_mechanisms},
    {CKA_PUBLIC_KEY_INFO, Given::kNever, {}, public_key_info},
    {CKA_SUBJECT, Given::kChangeable, {}, given_subject},
    {CKA_SENSITIVE, Given::kDefault, true},
    {CKA_DECRYPT, Given::kUsage, false},
    {CKA_SIGN, Given::kDefault, true},
    {CKA_SIGN_RECOVER, Given::kUsage, false},
    {CKA_UNWRAP, Given::kUsage, false},
    {CKA_EXTRACTABLE, Given::kDefault, false},
    {CKA_ALWAYS_SENSITIVE, Given::kNever, {}, session_kept_inside},
    {CKA_NEVER_EXTRACTABLE, Given::kNever, {}, session_kept_inside},
    {CKA_WRAP_WITH_TRUSTED, Given::kNever, false},
    {CKA_ALWAYS_AUTHENTICATE, Given::kDefault, false},
    {CKA_EC_PARAMS, Given::kValue, {}, ec_params},
    {CKA_MODULUS, Given::kValue, {}, modulus},
    {CKA_MODULUS_BITS, Given::kNever, {}, modulus_bits},
    {CKA_PUBLIC_EXPONENT, Given::kValue, {}, public_exponent},
    {CKA_VALUE, Given::kSecret, {}, nullptr, false, true},
    {CKA_PRIVATE_EXPONENT, Given::kSecret, {}, nullptr, false, true},
    {CKA_PRIME_1, Given::kSecret, {}, nullptr, false, true},
    {CKA_PRIME_2, Given::kSecret, {}, nullptr, false, true},
    {CKA_EXPONENT_1, Given::kSecret, {}, nullptr, false, true},
    {CKA_EXPONENT_2, Given::kSecret, {}, nullptr, false, true},
    {CKA_COEFFICIENT, Given::kSecret, {}, nullptr, false, true},
};

}  // namespace

bool is_session(Kind k) {
  return k == Kind::kSessionCertificate || k == Kind::kSessionPublicKey ||
         k == Kind::kSessionPrivateKey || k == Kind::kSessionData;
}
bool is_private_key(Kind k) {
  return k == Kind::kPrivateKey || k == Kind::kSessionPrivateKey;
}
bool is_public_key(Kind k) {
  return k == Kind::kPublicKey || k == Kind::kSessionPublicKey;
}
bool is_data(Kind k) {
  return k == Kind::kData || k == Kind::kSessionData;
}

CK_OBJECT_CLASS class_of(Kind k) {
  switch (k) {
    case Kind::kCertificate:
    case Kind::kCaCertificate:
    case Kind::kSessionCertificate:
      return CKO_CERTIFICATE;
    case Kind::kPublicKey:
    case Kind::kSessionPublicKey:
      return CKO_PUBLIC_KEY;
    case Kind::kPrivateKey:
    case Kind::kSessionPrivateKey:
      return CKO_PRIVATE_KEY;
    case Kind::kData:
    case Kind::kSessionData:
      return CKO_DATA;
    case Kind::kProfile:
      break;
  }
  return CKO_PROFILE;
}

std::span<const Attribute> attributes_of(Kind kind) {
  switch (kind) {
    case Kind::kCertificate:
      return kCertificate;
    case Kind::kCaCertificate:
      return kCaCertificate;
    case Kind::kPublicKey:
      return kPublicKey;
    case Kind::kPrivateKey:
      return kPrivateKey;
    case Kind::kData:
      return kData;
    case Kind::kSessionData:
      return kSessionData;
    case Kind::kSessionCertificate:
      return kSessionCertificate;
    case Kind::kSessionPublicKey:
      return kSessionPublicKey;
    case Kind::kSessionPrivateKey:
      return kSessionPrivateKey;
    case Kind::kProfile:
      break;
  }
  return kProfile;
}

const Attribute* attribute_of(Kind kind, CK_ATTRIBUTE_TYPE type) {
  for (const Attribute& a : attributes_of(kind))
    if (a.type == type) return &a;
  return nullptr;
}

std::optional<Bytes> value_of(const Attribute& a, const Source& source) {
  if (a.read) return a.read(source);
  if (a.fixed) return flag(*a.fixed);
  return std::nullopt;
}

}  // namespace certvault::pkcs11

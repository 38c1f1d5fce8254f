#include "templates.h"

#include <openssl/objects.h>
#include <openssl/x509.h>

#include <cstring>
#include <span>

#include "attributes.h"
#include "ossl.h"

namespace certvault::pkcs11 {
namespace {

template <typename T>
std::optional<T> scalar(const CK_ATTRIBUTE& a) {
  if (!a.pValue || a.ulValueLen != sizeof(T)) return std::nullopt;
  T v;
  std::memcpy(&v, a.pValue, sizeof v);
  return v;
}

Bytes bytes_of(const CK_ATTRIBUTE& a) {
  const auto* p = static_cast<const uint8_t*>(a.pValue);
  return p ? Bytes(p, p + a.ulValueLen) : Bytes();
}

// Checks every attribute of one template against the table of the object it makes
// (attributes.cc; v3.0 4.1.1) and sorts what it gives into `out`.
CK_RV check_template(Kind kind, const CK_ATTRIBUTE* templ, CK_ULONG count,
                     std::optional<CK_KEY_TYPE> key_type, TemplateValues& out) {
  if (count && !templ) return CKR_ARGUMENTS_BAD;
  for (CK_ULONG i = 0; i < count; ++i) {
    const CK_ATTRIBUTE& a = templ[i];
    if (!a.pValue && a.ulValueLen) return CKR_ARGUMENTS_BAD;
    const Attribute* r = attribute_of(kind, a.type);
    // v3.0 4.1.1, items 1 and 2.
    if (!r || r->given == Given::kNever) return CKR_ATTRIBUTE_TYPE_INVALID;
    switch (r->given) {
      case Given::kNever:
        return CKR_ATTRIBUTE_TYPE_INVALID;
      case Given::kDefault:
      case Given::kUsage:
      case Given::kFlag: {
        auto b = scalar<CK_BBOOL>(a);
        if (!b) return CKR_ATTRIBUTE_VALUE_INVALID;
        // The object made has its default; a template that asks otherwise cannot be honoured.
        if (r->given == Given::kDefault && r->fixed && (*b != CK_FALSE) != *r->fixed)
          return CKR_TEMPLATE_INCONSISTENT;
        out.flags[a.type] = *b != CK_FALSE;
        break;
      }
      case Given::kClass: {
        auto c = scalar<CK_OBJECT_CLASS>(a);
        if (!c) return CKR_ATTRIBUTE_VALUE_INVALID;
        if (*c != class_of(kind)) return CKR_TEMPLATE_INCONSISTENT;
        break;
      }
      case Given::kKeyType: {
        auto k = scalar<CK_KEY_TYPE>(a);
        if (!k) return CKR_ATTRIBUTE_VALUE_INVALID;
        if (key_type && *k != *key_type) return CKR_TEMPLATE_INCONSISTENT;
        out.values[a.type] = bytes_of(a);
        break;
      }
      case Given::kLabel: {
        std::string l(static_cast<const char*>(a.pValue), a.ulValueLen);
        if (out.label && *out.label != l) return CKR_TEMPLATE_INCONSISTENT;
        out.label = std::move(l);
        break;
      }
      case Given::kReadOnly:
        return CKR_ATTRIBUTE_READ_ONLY;  // v3.0 4.1.1, item 3
      case Given::kValue:
      case Given::kChangeable:
        // A data object's value may be a secret: it goes to guarded memory.
        if (is_data(kind) && a.type == CKA_VALUE)
          out.secrets[a.type] = SecureBytes(a.pValue, a.ulValueLen);
        else
          out.values[a.type] = bytes_of(a);
        break;
      case Given::kSecret:
        out.secrets[a.type] = SecureBytes(a.pValue, a.ulValueLen);
        break;
    }
  }
  return CKR_OK;
}

const CK_ATTRIBUTE* find(const CK_ATTRIBUTE* templ, CK_ULONG count, CK_ATTRIBUTE_TYPE type) {
  for (CK_ULONG i = 0; i < count; ++i)
    if (templ[i].type == type) return &templ[i];
  return nullptr;
}

// CKA_EC_PARAMS: a DER object identifier, or (PKCS#11 3.0, 2.3.10) a PrintableString with
// the curve's name.
}  // namespace

std::optional<int> curve_nid(const std::vector<uint8_t>& v) {
  const unsigned char* p = v.data();
  if (!v.empty() && v[0] == 0x13) {  // PrintableString
    ASN1_STRING* s = d2i_ASN1_PRINTABLESTRING(nullptr, &p, static_cast<long>(v.size()));
    if (!s) return std::nullopt;
    std::string name(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                     static_cast<size_t>(ASN1_STRING_length(s)));
    ASN1_STRING_free(s);
    if (name == "edwards25519") return NID_ED25519;
    int nid = OBJ_sn2nid(name.c_str());
    return nid == NID_undef ? OBJ_ln2nid(name.c_str()) : nid;
  }
  ASN1_OBJECT* o = d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(v.size()));
  if (!o || p != v.data() + v.size()) {
    ASN1_OBJECT_free(o);
    return std::nullopt;
  }
  int nid = OBJ_obj2nid(o);
  ASN1_OBJECT_free(o);
  return nid;
}

namespace {

std::optional<int> curve_of(const CK_ATTRIBUTE& a) {
  return curve_nid(bytes_of(a));
}

CK_RV key_type_for(const CK_MECHANISM& m, const CK_ATTRIBUTE* pub, CK_ULONG pub_count,
                   KeyType& out) {
  switch (m.mechanism) {
    case CKM_RSA_PKCS_KEY_PAIR_GEN: {
      const CK_ATTRIBUTE* bits = find(pub, pub_count, CKA_MODULUS_BITS);
      if (!bits) return CKR_TEMPLATE_INCOMPLETE;  // mechanisms 2.1.4
      auto n = scalar<CK_ULONG>(*bits);
      if (!n) return CKR_ATTRIBUTE_VALUE_INVALID;
      switch (*n) {
        case 2048:
          out = KeyType::kRsa2048;
          break;
        case 3072:
          out = KeyType::kRsa3072;
          break;
        case 4096:
          out = KeyType::kRsa4096;
          break;
        default:
          return CKR_ATTRIBUTE_VALUE_INVALID;
      }
      // certvault's RSA keys use e = 65537; a template may say so, with leading zeros.
      if (const CK_ATTRIBUTE* e = find(pub, pub_count, CKA_PUBLIC_EXPONENT)) {
        Bytes v = bytes_of(*e);
        auto first = std::find_if(v.begin(), v.end(), [](uint8_t b) { return b != 0; });
        if (Bytes(first, v.end()) != Bytes{0x01, 0x00, 0x01}) return CKR_ATTRIBUTE_VALUE_INVALID;
      }
      if (find(pub, pub_count, CKA_EC_PARAMS)) return CKR_TEMPLATE_INCONSISTENT;
      return CKR_OK;
    }
    case CKM_EC_KEY_PAIR_GEN:
    case CKM_EC_EDWARDS_KEY_PAIR_GEN: {
      const CK_ATTRIBUTE* params = find(pub, pub_count, CKA_EC_PARAMS);
      if (!params) return CKR_TEMPLATE_INCOMPLETE;  // mechanisms 2.3.9
      if (find(pub, pub_count, CKA_MODULUS_BITS) || find(pub, pub_count, CKA_PUBLIC_EXPONENT))
        return CKR_TEMPLATE_INCONSISTENT;
      auto nid = curve_of(*params);
      if (!nid) return CKR_ATTRIBUTE_VALUE_INVALID;
      const bool edwards = m.mechanism == CKM_EC_EDWARDS_KEY_PAIR_GEN;
      if (edwards && *nid == NID_ED25519) {
        out = KeyType::kEd25519;
      } else if (!edwards && *nid == NID_X9_62_prime256v1) {
        out = KeyType::kEcP256;
      } else if (!edwards && *nid == NID_secp384r1) {
        out = KeyType::kEcP384;
      } else {
        return CKR_CURVE_NOT_SUPPORTED;
      }
      return CKR_OK;
    }
    default:
      return CKR_MECHANISM_INVALID;
  }
}

CK_KEY_TYPE ck_key_type_of(CK_MECHANISM_TYPE m) {
  return m == CKM_RSA_PKCS_KEY_PAIR_GEN ? CKK_RSA
         : m == CKM_EC_KEY_PAIR_GEN     ? CKK_EC
                                        : CKK_EC_EDWARDS;
}

}  // namespace

bool wants_token_object(const CK_ATTRIBUTE* templ, CK_ULONG count) {
  CK_BBOOL token = CK_FALSE;
  for (CK_ULONG i = 0; templ && i < count; ++i)
    if (templ[i].type == CKA_TOKEN && templ[i].pValue && templ[i].ulValueLen == sizeof token)
      std::memcpy(&token, templ[i].pValue, sizeof token);
  return token != CK_FALSE;
}

CK_RV parse_key_pair(const CK_MECHANISM& m, const CK_ATTRIBUTE* pub, CK_ULONG pub_count,
                     const CK_ATTRIBUTE* priv, CK_ULONG priv_count, KeyPairRequest& out) {
  if (m.pParameter || m.ulParameterLen) return CKR_MECHANISM_PARAM_INVALID;
  if (CK_RV rv = key_type_for(m, pub, pub_count, out.key_type); rv != CKR_OK) return rv;
  const CK_KEY_TYPE kt = ck_key_type_of(m.mechanism);
  // v3.0 4.4: CKA_TOKEN is false unless a template says otherwise. A vault entry holds both
  // halves, a session both or neither: a pair split between the two is refused.
  out.token = wants_token_object(pub, pub_count);
  if (out.token != wants_token_object(priv, priv_count)) return CKR_TEMPLATE_INCONSISTENT;
  const Kind pub_kind = out.token ? Kind::kPublicKey : Kind::kSessionPublicKey;
  const Kind priv_kind = out.token ? Kind::kPrivateKey : Kind::kSessionPrivateKey;
  if (CK_RV rv = check_template(pub_kind, pub, pub_count, kt, out.pub); rv != CKR_OK) return rv;
  if (CK_RV rv = check_template(priv_kind, priv, priv_count, kt, out.priv); rv != CKR_OK) return rv;
  if (!out.token) return CKR_OK;  // a session key pair needs no label
  // The two templates name one entry.
  if (out.pub.label && out.priv.label && *out.pub.label != *out.priv.label)
    return CKR_TEMPLATE_INCONSISTENT;
  const auto& label = out.pub.label ? out.pub.label : out.priv.label;
  if (!label) return CKR_TEMPLATE_INCOMPLETE;  // the nickname names the new entry
  out.label = *label;
  return CKR_OK;
}

CK_RV parse_object(Kind kind, const CK_ATTRIBUTE* templ, CK_ULONG count, ObjectRequest& out) {
  out.kind = kind;
  if (CK_RV rv = check_template(kind, templ, count, std::nullopt, out.given); rv != CKR_OK)
    return rv;
  auto& v = out.given.values;
  switch (kind) {
    case Kind::kSessionCertificate:
      return check_x509_template(out.given);
    case Kind::kSessionPublicKey:
    case Kind::kSessionPrivateKey:
      // v3.0 4.7: a key's type has no default.
      if (!v.contains(CKA_KEY_TYPE)) return CKR_TEMPLATE_INCOMPLETE;
      break;
    default:
      break;
  }
  return CKR_OK;
}

// v3.0 4.6.2 and 4.6.3, footnote 1 of their tables ("MUST be specified when object is created
// with C_CreateObject"): the certificate's type, CKA_SUBJECT and CKA_VALUE. CKA_VALUE could be
// empty for a CKA_URL (footnote 14), which the module does not take.
CK_RV check_x509_template(const TemplateValues& given) {
  for (CK_ATTRIBUTE_TYPE required : {CKA_CERTIFICATE_TYPE, CKA_SUBJECT, CKA_VALUE})
    if (!given.value(required)) return CKR_TEMPLATE_INCOMPLETE;  // 4.1.1 item 4
  const Bytes& type = *given.value(CKA_CERTIFICATE_TYPE);
  CK_CERTIFICATE_TYPE t = 0;
  if (type.size() != sizeof t) return CKR_ATTRIBUTE_VALUE_INVALID;
  std::memcpy(&t, type.data(), sizeof t);
  return t == CKC_X_509 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

// v3.0 4.1.1: a value that is no DER name (or integer) is invalid on its own (item 2,
// CKR_ATTRIBUTE_VALUE_INVALID); a well-formed subject, issuer or serial number that is not the
// certificate's cannot be satisfied together with its CKA_VALUE (item 5: "not all of its members
// can be satisfied simultaneously by the token, although each value individually is valid"),
// CKR_TEMPLATE_INCONSISTENT. SoftHSM2 2.6 takes them unchecked (docs/pkcs11.md).
CK_RV check_x509_matches(const TemplateValues& given, const X509* cert) {
  auto well_formed = [](CK_ATTRIBUTE_TYPE type, const Bytes& v) {
    const unsigned char* p = v.data();
    const long n = static_cast<long>(v.size());
    bool ok = false;
    if (type == CKA_SERIAL_NUMBER) {
      ASN1_INTEGER* i = d2i_ASN1_INTEGER(nullptr, &p, n);
      ok = i != nullptr;
      ASN1_INTEGER_free(i);
    } else {
      X509_NAME* name = d2i_X509_NAME(nullptr, &p, n);
      ok = name != nullptr;
      X509_NAME_free(name);
    }
    return ok && p == v.data() + v.size();
  };
  const std::pair<CK_ATTRIBUTE_TYPE, Bytes> own[] = {
      {CKA_SUBJECT, ossl::to_der<X509_NAME, i2d_X509_NAME>(X509_get_subject_name(cert))},
      {CKA_ISSUER, ossl::to_der<X509_NAME, i2d_X509_NAME>(X509_get_issuer_name(cert))},
      {CKA_SERIAL_NUMBER,
       ossl::to_der<ASN1_INTEGER, i2d_ASN1_INTEGER>(X509_get0_serialNumber(cert))}};
  for (const auto& [type, der] : own)
    if (const Bytes* v = given.value(type); v && !well_formed(type, *v))
      return CKR_ATTRIBUTE_VALUE_INVALID;
  for (const auto& [type, der] : own)
    if (const Bytes* v = given.value(type); v && *v != der) return CKR_TEMPLATE_INCONSISTENT;
  return CKR_OK;
}

CK_RV parse_certificate(const CK_ATTRIBUTE* templ, CK_ULONG count, CertificateRequest& out) {
  TemplateValues given;
  if (CK_RV rv = check_template(Kind::kCertificate, templ, count, std::nullopt, given);
      rv != CKR_OK)
    return rv;
  if (!find(templ, count, CKA_CLASS)) return CKR_TEMPLATE_INCOMPLETE;
  if (CK_RV rv = check_x509_template(given); rv != CKR_OK) return rv;
  if (!given.flag(CKA_TOKEN, false)) return CKR_TEMPLATE_INCONSISTENT;
  if (const CK_ATTRIBUTE* c = find(templ, count, CKA_CERTIFICATE_CATEGORY)) {
    auto category = scalar<CK_ULONG>(*c);
    if (!category) return CKR_ATTRIBUTE_VALUE_INVALID;
    if (*category != 0 && *category != 1) return CKR_TEMPLATE_INCONSISTENT;  // a client's own
  }
  out.der = *given.value(CKA_VALUE);
  auto cert = ossl::cert_from_der(out.der);
  if (!cert) return CKR_ATTRIBUTE_VALUE_INVALID;
  if (CK_RV rv = check_x509_matches(given, cert->get()); rv != CKR_OK) return rv;
  out.label = std::move(given.label);
  if (const CK_ATTRIBUTE* id = find(templ, count, CKA_ID)) out.id = bytes_of(*id);
  return CKR_OK;
}

}  // namespace certvault::pkcs11

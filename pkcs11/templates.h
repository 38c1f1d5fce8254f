// What an application may ask for when it makes objects: the templates of
// C_GenerateKeyPair and C_CreateObject, checked against the attribute table of the object
// each makes (attributes.cc).
#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ck.h"
#include "kind.h"
#include "secure.h"
#include "types.h"

namespace certvault::pkcs11 {

// What one template gives, sorted by what its table says of each attribute.
struct TemplateValues {
  std::optional<std::string> label;                          // CKA_LABEL
  std::map<CK_ATTRIBUTE_TYPE, bool> flags;                   // CK_BBOOL attributes given
  std::map<CK_ATTRIBUTE_TYPE, std::vector<uint8_t>> values;  // values to keep
  std::map<CK_ATTRIBUTE_TYPE, SecureBytes> secrets;          // a private key's parts
  bool flag(CK_ATTRIBUTE_TYPE type, bool by_default) const {
    auto it = flags.find(type);
    return it == flags.end() ? by_default : it->second;
  }
  const std::vector<uint8_t>* value(CK_ATTRIBUTE_TYPE type) const {
    auto it = values.find(type);
    return it == values.end() ? nullptr : &it->second;
  }
};

// CKA_EC_PARAMS: a DER object identifier, or (v3.0 current mechanisms 2.3.10) a
// PrintableString with the curve's name; the curve's OpenSSL NID.
std::optional<int> curve_nid(const std::vector<uint8_t>& ec_params);

// CKA_TOKEN of a template (v3.0 4.4: false unless it says otherwise).
bool wants_token_object(const CK_ATTRIBUTE* templ, CK_ULONG count);

// C_GenerateKeyPair: a new entry named `label` holding a key of `key_type`, or (CKA_TOKEN
// false in both templates) a session key pair with what the templates give.
struct KeyPairRequest {
  std::string label;
  KeyType key_type = KeyType::kEcP256;
  bool token = true;
  TemplateValues pub, priv;
};
CK_RV parse_key_pair(const CK_MECHANISM& mechanism, const CK_ATTRIBUTE* pub, CK_ULONG pub_count,
                     const CK_ATTRIBUTE* priv, CK_ULONG priv_count, KeyPairRequest& out);

// C_CreateObject: an X.509 certificate for a key that waits for one.
struct CertificateRequest {
  std::vector<uint8_t> der;
  std::optional<std::string> label;
  std::optional<std::vector<uint8_t>> id;
};
CK_RV parse_certificate(const CK_ATTRIBUTE* templ, CK_ULONG count, CertificateRequest& out);

// C_CreateObject of an X.509 certificate, a token or a session one (v3.0 4.6.2, 4.6.3): the
// attributes it must be given and its type (CKR_TEMPLATE_INCOMPLETE,
// CKR_ATTRIBUTE_VALUE_INVALID); then, once its CKA_VALUE has been read as `cert`, the subject,
// issuer and serial number the template gives (CKR_ATTRIBUTE_VALUE_INVALID for one that is no
// DER name or integer, CKR_TEMPLATE_INCONSISTENT for one that is not `cert`'s).
CK_RV check_x509_template(const TemplateValues& given);
CK_RV check_x509_matches(const TemplateValues& given, const X509* cert);

// C_CreateObject of any other object: a session object (certificate, public or private key,
// data) or a data object kept in the vault; `kind` names the table the template is checked
// against. The values are checked for what they are (a certificate's DER, a key's parts) when
// the object is made (session_objects.cc).
struct ObjectRequest {
  Kind kind = Kind::kSessionData;
  TemplateValues given;
};
CK_RV parse_object(Kind kind, const CK_ATTRIBUTE* templ, CK_ULONG count, ObjectRequest& out);

}  // namespace certvault::pkcs11

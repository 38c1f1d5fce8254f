// The attributes of each object class, one declarative table per class (PKCS#11 v3.0
// chapter 4): for every attribute, what a template may say about it (who may set it), its
// default, whether it is sensitive, and how it is read. The same rows drive the template
// checks of C_CreateObject and C_GenerateKeyPair (templates.cc), and C_GetAttributeValue,
// C_FindObjects and C_GetObjectSize (token.cc).
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ck.h"
#include "token.h"

namespace certvault::pkcs11 {

using Bytes = std::vector<uint8_t>;

// Who may set an attribute, and what they may say. An entry's certificate is made by
// C_CreateObject, its key pair by C_GenerateKeyPair, the other vault objects by certvault
// alone; session objects and data objects by C_CreateObject (and session key pairs by
// C_GenerateKeyPair) with what their templates give.
enum class Given {
  kNever,     // in no template: CKR_ATTRIBUTE_TYPE_INVALID there (v3.0 4.1.1)
  kReadOnly,  // certvault chooses it: CKR_ATTRIBUTE_READ_ONLY (v3.0 4.1.1)
  kDefault,   // a CK_BBOOL that may only be given as its default: else CKR_TEMPLATE_INCONSISTENT
  // A CK_BBOOL for a use other than signing. Vault keys only sign, so the objects say
  // false and no such mechanism is offered; a true here is accepted because common tools
  // ask for it by default (pkcs11-tool --keypairgen asks for CKA_DERIVE on EC keys).
  kUsage,
  kClass,    // CKA_CLASS, which must name the object being made
  kKeyType,  // CKA_KEY_TYPE, which must agree with the mechanism
  // CKA_LABEL: an entry's nickname, which C_SetAttributeValue changes (a rename); any text
  // for a session or data object, changed likewise where the object is modifiable.
  kLabel,
  kValue,       // taken, and checked against what is made (templates.cc, session_objects.cc)
  kFlag,        // a CK_BBOOL the template chooses (CKA_PRIVATE of a session object, ...)
  kChangeable,  // kValue that C_SetAttributeValue may change on a modifiable object
  kSecret,      // a private key's part given by value: taken, never read (sensitive)
};

// What a reader sees of an object: its record, and (for storage objects) its certificate
// (empty for a key that waits for one) and public key.
struct Source {
  const Object& object;
  bool through_agent = false;
  const Bytes& cert;
  const X509* x509 = nullptr;
  EVP_PKEY* pub = nullptr;
  const Bytes& spki;
};

struct Attribute {
  CK_ATTRIBUTE_TYPE type;
  Given given = Given::kNever;
  // The value every object of the class has (a CK_BBOOL), which a template may only repeat
  // (Given::kDefault); std::nullopt: the value is read.
  std::optional<bool> fixed;
  // How the value is read, when it is not fixed; std::nullopt from it: the object has no such
  // attribute (CKR_ATTRIBUTE_TYPE_INVALID), as a key without a certificate has no subject.
  std::optional<Bytes> (*read)(const Source&) = nullptr;
  // Read from the object's record, without a file: a search by it costs nothing.
  bool cheap = false;
  // Never returned (v3.0 4.9: a private key's secret parts): CKR_ATTRIBUTE_SENSITIVE.
  bool sensitive = false;
};

// The table of an object's kind: the certificate, public key and private key of an entry,
// the vault CA's certificate, the profile object.
std::span<const Attribute> attributes_of(Kind kind);
// The row of `type` in that table, or null.
const Attribute* attribute_of(Kind kind, CK_ATTRIBUTE_TYPE type);
// The value of a row: the fixed one, or what it reads.
std::optional<Bytes> value_of(const Attribute& a, const Source& source);

}  // namespace certvault::pkcs11

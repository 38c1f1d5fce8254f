// What kind of object a PKCS#11 object is, and so which attribute table it reads
// (attributes.cc).
#pragma once

#include "ck.h"

namespace certvault::pkcs11 {

// What an object is. An entry's current certificate and key pair, the vault CA's
// certificate and the vault's data objects (v3.0 4.5) are token objects (storage objects,
// v3.0 4.4, with CKA_TOKEN true) made from the vault; the profile object (v3.0 4.13) says
// which PKCS#11 profile the token implements and belongs to no entry. Session objects
// (CKA_TOKEN false) live in this process only, each until the session that made it ends
// (v3.0 5.6.2): certificates, keys and data an application made with C_CreateObject or
// C_GenerateKeyPair.
enum class Kind {
  kCertificate,
  kPublicKey,
  kPrivateKey,
  kCaCertificate,
  kProfile,
  kData,
  kSessionCertificate,
  kSessionPublicKey,
  kSessionPrivateKey,
  kSessionData,
};
bool is_session(Kind k);
bool is_private_key(Kind k);
bool is_public_key(Kind k);
bool is_data(Kind k);
CK_OBJECT_CLASS class_of(Kind k);

}  // namespace certvault::pkcs11

// Session objects (PKCS#11 v3.0 4.4, CKA_TOKEN false) made from what a template gives:
// certificates, public keys and data as given, private keys given by value or generated
// (the keystore holds the private key: keystore/session_key.h). The token keeps them
// (Token::add_session_object); this file only checks and builds them.
#pragma once

#include "templates.h"
#include "token.h"

namespace certvault::pkcs11 {

// C_CreateObject: `out` gets everything but its handle and session.
CK_RV make_session_object(const ObjectRequest& request, Object& out);
// C_GenerateKeyPair with CKA_TOKEN false in both templates.
CK_RV make_session_key_pair(const KeyPairRequest& request, Object& pub, Object& priv);
// CKA_EC_PARAMS as a key type: P-256, P-384 (CKK_EC) or Ed25519 (CKK_EC_EDWARDS).
std::optional<KeyType> key_type_of_params(CK_KEY_TYPE key_type, const std::vector<uint8_t>& params);

}  // namespace certvault::pkcs11

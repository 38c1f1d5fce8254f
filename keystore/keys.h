// Key pairs: generation, identification, and (de)serialisation of private keys into
// guarded memory.
#pragma once

#include <span>
#include <string>

#include "ossl.h"
#include "secure.h"
#include "types.h"

namespace certvault::keys {

Result<ossl::Pkey> generate(KeyType type);
Result<KeyType> type_of(EVP_PKEY* pkey);
// Hex SHA-1 of the subjectPublicKey bits (RFC 5280 4.2.1.2 method 1): SKI and CKA_ID.
std::string key_id(EVP_PKEY* pkey);
// PKCS#8 PrivateKeyInfo DER, written straight into guarded memory.
Result<SecureBytes> private_der(EVP_PKEY* pkey);
Result<ossl::Pkey> from_private_der(const SecureBytes& der);
// True when both hold the same public key.
bool same_public(EVP_PKEY* a, EVP_PKEY* b);

}  // namespace certvault::keys

// What an application may ask for when it makes objects: the templates of
// C_GenerateKeyPair and C_CreateObject, checked against what a vault entry can be.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ck.h"
#include "types.h"

namespace certvault::pkcs11 {

// C_GenerateKeyPair: a new entry named `label` holding a key of `key_type`.
struct KeyPairRequest {
  std::string label;
  KeyType key_type = KeyType::kEcP256;
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

}  // namespace certvault::pkcs11

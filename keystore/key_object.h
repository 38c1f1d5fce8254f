// The format layer for key objects: one immutable JSON file per generation (and per CA),
// named by the BLAKE2b-256 of its bytes. The private key inside is sealed with
// XChaCha20-Poly1305; the associated data binds vault, owner, generation and public key.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "error.h"
#include "types.h"

namespace certvault::key_object {

using Bytes = std::vector<uint8_t>;

struct KeyObject {
  std::string vault_id;
  std::string owner;        // entry id, or "ca:" + CA id
  uint32_t generation = 0;  // 0 for a CA
  KeyType key_type = KeyType::kEcP256;
  Bytes public_key;          // SubjectPublicKeyInfo DER
  Bytes certificate;         // DER; empty while waiting for a CA's answer
  std::vector<Bytes> chain;  // issuer first
  Bytes sealed_key;
};

Bytes encode(const KeyObject& object);
Result<KeyObject> decode(std::span<const uint8_t> bytes);
// The associated data that binds a sealed key to its place.
Bytes seal_ad(const KeyObject& object);

}  // namespace certvault::key_object

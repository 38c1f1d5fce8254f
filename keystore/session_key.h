// Keys that live in one program's memory only and never in a vault: PKCS#11 session keys
// (CKA_TOKEN false), generated there or given by value. The private key becomes a
// SigningKey, as a vault key decrypted in-process does, so it is reached only through the
// keystore's signing API and freed (its secret parts cleared by OpenSSL) with its last user.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "error.h"
#include "ossl.h"
#include "secure.h"
#include "signing.h"
#include "types.h"

namespace certvault::session_key {

struct SessionKey {
  std::shared_ptr<const SigningKey> signer;
  KeyType type = KeyType::kEcP256;
  std::vector<uint8_t> spki;  // SubjectPublicKeyInfo DER
};

// A new key of a type a vault holds.
Result<SessionKey> generate(KeyType type);

// A private key given by its parts (big-endian integers, as PKCS#11 gives them). Each is
// checked for what a vault key may be (curves P-256 and P-384, Ed25519, RSA 2048, 3072 or
// 4096 bits) and for consistency; the public half is derived from it.
Result<SessionKey> from_ec(KeyType curve, const SecureBytes& scalar);
Result<SessionKey> from_ed25519(const SecureBytes& seed);
struct RsaParts {
  std::vector<uint8_t> n, e;
  SecureBytes d, p, q, dp, dq, qinv;
};
Result<SessionKey> from_rsa(const RsaParts& parts);

// A public key given by its parts: an EC point (uncompressed or compressed), an Ed25519
// key, an RSA modulus and exponent.
Result<ossl::Pkey> public_from_ec(KeyType curve, std::span<const uint8_t> point);
Result<ossl::Pkey> public_from_ed25519(std::span<const uint8_t> key);
Result<ossl::Pkey> public_from_rsa(std::span<const uint8_t> n, std::span<const uint8_t> e);

}  // namespace certvault::session_key

// The crypto layer: key derivation, sealing and authentication. No file I/O.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "secure.h"
#include "types.h"

namespace certvault::seal {

using Bytes = std::vector<uint8_t>;
constexpr size_t kKeyBytes = 32;
constexpr size_t kSaltBytes = 16;

// Argon2id cost limits: libsodium's minimums, and at most 4 GiB and 64 passes.
constexpr uint64_t kKdfMaxOps = 64;
constexpr uint64_t kKdfMaxMem = 4ull << 30;
bool kdf_in_range(const KdfParams& kdf);
// Argon2id(PIN, salt) with the stored cost.
Result<SecureBytes> pin_key(const SecureBytes& pin, std::span<const uint8_t> salt,
                            const KdfParams& kdf);
// The recovery secret carries 256 random bits, so a keyed BLAKE2b is enough to stretch it.
SecureBytes recovery_key(const SecureBytes& recovery, std::span<const uint8_t> salt);
// Recovery secret as shown to the user ("8 groups of 8 hex digits") and parsed back.
SecureBytes new_recovery_secret();
Result<SecureBytes> parse_recovery_secret(const SecureBytes& text);

enum class Purpose : uint64_t { kSealKeys = 1, kAuthenticate = 2 };
SecureBytes subkey(const SecureBytes& vault_key, Purpose purpose);

// XChaCha20-Poly1305 with a random nonce: output is nonce || ciphertext || tag.
Bytes seal(const SecureBytes& key, std::span<const uint8_t> plaintext, std::span<const uint8_t> ad);
// nullopt-like failure is reported as kTampered; callers reword it when it means a wrong PIN.
Result<SecureBytes> open(const SecureBytes& key, std::span<const uint8_t> sealed,
                         std::span<const uint8_t> ad);

// Keyed BLAKE2b-256 over `data`.
Bytes mac(const SecureBytes& key, std::span<const uint8_t> data);
bool mac_equal(std::span<const uint8_t> a, std::span<const uint8_t> b);
// Unkeyed BLAKE2b-256: names content-addressed files.
Bytes content_hash(std::span<const uint8_t> data);

Bytes random_bytes(size_t n);
std::string to_hex(std::span<const uint8_t> data);
Result<Bytes> from_hex(std::string_view hex);
std::string to_base64(std::span<const uint8_t> data);
// RFC 4648 section 5, without padding (JOSE, RFC 7515 2; ACME).
std::string to_base64url(std::span<const uint8_t> data);
Result<Bytes> from_base64(std::string_view b64);
inline std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace certvault::seal

// How a vault key signs, once, for every front end: the agent signs with it for programs,
// and what a program asks for (mechanism, digest, padding) travels as these values.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "error.h"
#include "types.h"

namespace certvault {

enum class SignMechanism { kEcdsa, kRsaPkcs1, kRsaPss, kEd25519 };
std::string_view to_string(SignMechanism m);  // "ecdsa", "rsa-pkcs1", "rsa-pss", "ed25519"
Result<SignMechanism> parse_sign_mechanism(std::string_view text);

struct SignParams {
  SignMechanism mechanism = SignMechanism::kEcdsa;
  // The digest `data` was made with ("sha256", ...). Empty: `data` is signed as it is (an
  // ECDSA hash of any length, an RSA DigestInfo or TLS 1.1's MD5+SHA-1), and for Ed25519,
  // which signs the message itself, always empty.
  std::string digest;
  std::string mgf1_digest;   // RSA-PSS; empty: `digest`
  int64_t salt_length = -1;  // RSA-PSS; -1: the digest's length
};

// The largest input the agent takes: a digest, or a message for Ed25519 (TLS 1.3 and SSH
// sign well under a kilobyte).
inline constexpr size_t kMaxSignInput = 64 * 1024;

// Whether a key of type `t` signs with `p`: a mechanism of its algorithm and known digests.
Result<void> check_sign_params(KeyType t, const SignParams& p, size_t data_size);

// A key that signs, whichever holds it: this process (SigningKey, from an unlocked vault)
// or the agent (agent::RemoteKey). The provider and the PKCS#11 module hold one of these in
// place of a private key, and sign through it the same way.
class KeyHandle {
 public:
  virtual ~KeyHandle() = default;
  virtual KeyType type() const = 0;
  // `data` is a digest (made with p.digest when named), or the message for Ed25519.
  virtual Result<std::vector<uint8_t>> sign(const SignParams& p,
                                            std::span<const uint8_t> data) const = 0;
};

// A digest by name ("sha256", "SHA2-256"), fetched once per process and kept: fetching
// costs more than hashing what is signed. Null when unknown.
const EVP_MD* signing_digest(const std::string& name);

// A private key that signs many times: a context is set up once per set of parameters and
// copied for each signature (OpenSSL 3.0 looks the algorithm and the digest up again for
// every new context, which costs more than an ECDSA signature). Thread-safe; the lock is
// held only to find or add a context, never while signing.
class SigningKey final : public KeyHandle {
 public:
  SigningKey(std::shared_ptr<EVP_PKEY> key, KeyType type);
  ~SigningKey() override;
  SigningKey(const SigningKey&) = delete;
  SigningKey& operator=(const SigningKey&) = delete;
  KeyType type() const override { return type_; }
  Result<std::vector<uint8_t>> sign(const SignParams& p,
                                    std::span<const uint8_t> data) const override;

 private:
  std::shared_ptr<EVP_PKEY> key_;
  KeyType type_;
  mutable std::mutex mu_;
  mutable std::map<std::string, EVP_PKEY_CTX*> prepared_;  // by mechanism/digest/mgf1/salt
};

// Whether a generation may still sign, the status rules for programs that hold it: active;
// or superseded and not past its own notAfter (a program that loaded the key before a
// rotation keeps working until it reloads). Never when pending, disabled, or of an entry
// that is disabled (`disable` stops the superseded generations with the active one).
Result<void> check_usable(const Entry& e, const Generation& g, Time now);

// Which generation of an entry a program asks for: by number, by certificate serial (hex,
// compared without case or leading zeros), or, with neither, the current one.
struct GenerationWanted {
  std::optional<uint32_t> number;
  std::optional<std::string> serial;
};

// The generation `wanted` names, if check_usable() lets it sign: the one rule every front
// end applies (the provider and the PKCS#11 module in-process, and the agent for them).
// `where` names the vault in a message ("vault 'ops'"). A message says what is wrong, not
// which command to run: it may reach an OpenSSL or PKCS#11 user.
Result<const Generation*> resolve_generation(const Entry& e, const GenerationWanted& wanted,
                                             std::string_view where, Time now);

}  // namespace certvault

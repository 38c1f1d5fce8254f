// The key object behind an EVP_PKEY of this provider: a reference to a vault key (the
// private EVP_PKEY in the keystore's library context, which never leaves it) and an
// ordinary public key beside it that answers every public question.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "agent_key.h"
#include "types.h"

namespace certvault::provider {

enum class Algo { kRsa, kEc, kEd25519 };

inline Algo algo_of(KeyType t) {
  switch (t) {
    case KeyType::kEcP256:
    case KeyType::kEcP384:
      return Algo::kEc;
    case KeyType::kEd25519:
      return Algo::kEd25519;
    default:
      return Algo::kRsa;
  }
}

// The names OpenSSL's default provider uses, so that EVP_PKEY_is_a() and libssl's key
// type lookups treat a vault key like any other key of its type.
inline const char* algo_name(Algo a) {
  switch (a) {
    case Algo::kEc:
      return "EC";
    case Algo::kEd25519:
      return "ED25519";
    default:
      return "RSA";
  }
}

using SharedPkey = std::shared_ptr<EVP_PKEY>;
inline SharedPkey share(EVP_PKEY* p) {
  return SharedPkey(p, EVP_PKEY_free);
}

// Digest-sign contexts on a vault key, initialised once per digest and copied for each
// operation: a copy costs a fraction of a fresh init (no fetches, no key checks).
struct SignPrototypes {
  std::mutex mu;  // held only while copying, never while signing
  std::map<std::string, std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)>> by_digest;
};

struct KeyData {
  Algo algo = Algo::kEc;
  SharedPkey pub;   // public part, keystore library context; null while empty
  SharedPkey priv;  // the vault key; null for a public key and for an agent's key
  // A vault key the agent holds: signatures are asked of it, the key never comes here.
  std::shared_ptr<const agent::RemoteKey> remote;
  std::string name;                            // "certvault:NICKNAME", for the debug log
  bool vault = false;                          // a vault key: its private half is never exported
  std::shared_ptr<SignPrototypes> prototypes;  // vault keys only; shared by every copy
  // An ordinary key whose `pub` holds domain parameters but no public key (an EC key made
  // by EVP_PKEY_copy_parameters() or by parameter generation).
  bool params_only = false;
  bool has_private() const { return priv || remote; }
};

// What a STORE or DECODER passes as OSSL_OBJECT_PARAM_REFERENCE: a pointer to this,
// owned by the loader, which KEYMGMT's load copies.
struct KeyReference {
  static constexpr uint32_t kMagic = 0x43564b52;  // "CVKR"
  uint32_t magic = kMagic;
  const KeyData* key = nullptr;
};

}  // namespace certvault::provider

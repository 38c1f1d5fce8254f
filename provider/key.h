// The key object behind an EVP_PKEY of this provider: for a vault key, the keystore's handle
// that signs with it (in this process or in the agent; the private key never comes here)
// and an ordinary public key beside it that answers every public question.
#pragma once

#include <openssl/evp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "ossl.h"
#include "signing.h"
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

// How a vault key's digest-sign starts, one per digest, made on first use and copied for
// each signature: a copy costs a fraction of a fresh start (no fetches, no key checks).
struct SignPrototypes {
  struct Start {
    ossl::MdCtx shape;  // a digest-verify context on the public key: the parameters
    ossl::MdCtx hash;   // the digest, started; null for Ed25519, which signs the message
  };
  std::mutex mu;  // held only while copying, never while signing
  std::map<std::string, Start> by_digest;
};

struct KeyData {
  Algo algo = Algo::kEc;
  // A vault key's public half, in the keystore's library context; for an ordinary key the
  // key itself, its private half included when `ordinary_private`. Null while empty.
  SharedPkey pub;
  // A vault key: what signs with it, keystore's SigningKey in this process or the agent's
  // RemoteKey. Null for a public key and for an ordinary key.
  std::shared_ptr<const KeyHandle> signer;
  std::shared_ptr<SignPrototypes> prototypes;  // with `signer`; shared by every copy
  std::string name;                            // "certvault:NICKNAME", for the debug log
  // An ordinary key (imported or generated through this KEYMGMT) whose `pub` holds its
  // private half too.
  bool ordinary_private = false;
  // An ordinary key whose `pub` holds domain parameters but no public key (an EC key made
  // by EVP_PKEY_copy_parameters() or by parameter generation).
  bool params_only = false;
  // A vault key, whose private half is never exported.
  bool vault() const { return signer != nullptr; }
  bool has_private() const { return signer || ordinary_private; }
};

// What a STORE or DECODER passes as OSSL_OBJECT_PARAM_REFERENCE: a pointer to this,
// owned by the loader, which KEYMGMT's load copies.
struct KeyReference {
  static constexpr uint32_t kMagic = 0x43564b52;  // "CVKR"
  uint32_t magic = kMagic;
  const KeyData* key = nullptr;
};

}  // namespace certvault::provider

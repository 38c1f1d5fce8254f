// The vaults this provider activation has opened, and the keystore's signing handles on
// the keys it has unlocked. A vault handle is not thread-safe, so each is used under its
// own mutex; the maps have theirs. No lock of these is held while a key signs.
#pragma once

#include <openssl/core.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent_key.h"
#include "error.h"
#include "secure.h"
#include "types.h"
#include "uri.h"
#include "vault.h"

namespace certvault::provider {

struct ProvCtx;

// One generation of an entry as a load resolved it: public data only.
struct Resolved {
  std::filesystem::path dir;
  std::string vault_id;
  std::string nickname;
  uint32_t generation = 0;
  KeyType key_type = KeyType::kEcP256;
  std::string key_id;
  std::vector<uint8_t> cert;
  std::vector<std::vector<uint8_t>> chain;  // issuer first
  std::vector<uint8_t> spki;
  // Resolved by the agent: it holds the key, and the vault may be locked there.
  std::shared_ptr<const agent::RemoteKey> remote;
  std::optional<std::string> locked;  // the message when the agent's vault is locked
};

// Where a PIN may come from, in DESIGN.md's order after the URI and the provider's
// configuration: the application's passphrase callback, then a terminal prompt.
struct PinCallback {
  OSSL_PASSPHRASE_CALLBACK* cb = nullptr;
  void* arg = nullptr;
};

class Vaults {
 public:
  explicit Vaults(const ProvCtx* ctx) : ctx_(ctx) {}

  // The vault a URI names: vault= in the URI, else `vault` in openssl.cnf, else the
  // default vault ($CERTVAULT_VAULT...).
  std::filesystem::path dir_for(const VaultUri& uri) const;
  // The newest active generation of `nickname` (or the one with the URI's serial),
  // read afresh from the vault.
  Result<Resolved> resolve(const VaultUri& uri, const std::string& nickname);
  // Nicknames of every entry with a usable generation, for a URI that names none.
  Result<std::vector<std::string>> nicknames(const VaultUri& uri);
  // What signs with the key of a resolved generation: the keystore's SigningKey, the vault
  // unlocked and the key decrypted once per process.
  Result<std::shared_ptr<const KeyHandle>> signing_key(const Resolved& r, const VaultUri& uri,
                                                       const PinCallback& pin);

 private:
  // One per vault directory (by canonical path, so that symbolic links share it).
  struct Slot {
    std::mutex mu;  // the vault handle; never held while a PIN is asked for
    // One PIN request at a time, so that threads that need the same PIN wait for the first
    // answer instead of asking again. Taken before `mu`, never while holding it.
    std::mutex pin_mu;
    std::atomic<std::thread::id> asking;  // the thread that holds pin_mu, while one does
    std::optional<Vault> vault;
  };
  Result<std::shared_ptr<Slot>> slot(const std::filesystem::path& dir);
  // The URI's vault, opened in-process; when `asked` (an agent that does not serve it) is
  // given and there is no vault there either, the error says both.
  Result<std::shared_ptr<Slot>> in_process_slot(const VaultUri& uri, const agent::Client* asked);
  // Whether the slot's vault is unlocked, after a refresh whose failure (damage) it reports.
  Result<bool> unlocked(Slot& s);
  // Every PIN source fails with Code::kLocked (the provider's "no PIN available").
  Result<SecureBytes> pin_for(const Resolved& r, const VaultUri& uri, const PinCallback& pin);

  // The agent to ask first, when one listens; null otherwise.
  std::shared_ptr<agent::Client> agent();
  // The vault as the agent should know it: the URI's, the configuration's, $CERTVAULT_VAULT,
  // else "" (the agent's default vault).
  std::string agent_vault_name(const VaultUri& uri) const;

  const ProvCtx* ctx_;
  std::mutex mu_;
  std::shared_ptr<agent::Client> agent_;
  std::map<std::string, std::shared_ptr<Slot>> slots_;            // by canonical directory
  std::map<std::string, std::shared_ptr<const KeyHandle>> keys_;  // by "vault id/key id"
};

}  // namespace certvault::provider

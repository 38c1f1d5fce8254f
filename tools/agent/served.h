// The vaults an agent serves and what it does for its peers: the fixed set of keystore
// operations of docs/agent-protocol.md. Each vault has its own handle under its own mutex,
// held to refresh, resolve and check the policy, never while a key signs, so two peers
// sign in parallel. Decrypted keys stay here; a reply carries public data or a signature.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent_protocol.h"
#include "audit.h"
#include "peer.h"
#include "publish.h"
#include "signing.h"
#include "vault.h"

namespace certvault::agent {

struct ServeOptions {
  std::vector<std::filesystem::path> vaults;  // the first is the default unless `default_vault`
  std::optional<std::filesystem::path> default_vault;
  std::optional<std::chrono::seconds> default_ttl;  // nullopt: no limit
  // The renewal pass's period (docs/lifecycle.md); nullopt: only after each unlock.
  std::optional<std::chrono::seconds> renew_every = std::chrono::hours(1);
};

class ServedVault;

// The key a connection last signed with, as the policy admitted it for that peer: its
// next signature with the same key skips the lookup, and the vault's lock, while the
// manifest has not changed (every policy input is in the manifest).
struct LastSigner {
  const ServedVault* vault = nullptr;
  std::string nickname, key_id;
  uint32_t generation = 0;
  Vault::Stamp stamp;       // the manifest it was admitted from
  uint64_t keys_epoch = 0;  // the vault's key cache it came from (dropped: no longer used)
  Entry entry;              // for the date and status rules, which depend on the time
  // The vault's cache owns it: lock, the TTL, a commit and the owner's operations drop it
  // (wiped when the last signature with it ends).
  std::weak_ptr<const SigningKey> key;
};

// What the agent keeps per connection: the vaults it has used, for `status`.
struct ConnState {
  std::set<ServedVault*> touched;
  std::optional<LastSigner> last;
};

// The signing parameters of a kSign request.
Result<SignParams> sign_params(const Message& m);

class Agent {
 public:
  explicit Agent(Audit& audit);
  ~Agent();
  Result<void> serve(const ServeOptions& options);

  // One request from `peer`, one reply. Never throws.
  Frame handle(const Message& request, const PeerInfo& peer, ConnState& conn);
  void disconnected(ConnState& conn);

  // Unlocks the default vault with a PIN read at start (a systemd credential).
  Result<void> unlock_default(const SecureBytes& pin, const PeerInfo& self);
  // Locks every vault whose TTL has run out; called by a timer and before each request.
  void expire();
  void lock_all(const std::string& why);

  // Connected clients, for status.
  std::atomic<uint64_t> connections{0};

  // Renewal (docs/lifecycle.md): every unlocked vault is checked for entries due right
  // after each unlock and every hour, on a thread of its own so that signing goes on; the
  // entries' commands run there too, one at a time, never under a vault's lock.
  void renew_soon();
  void queue_hooks(std::vector<cli::AfterChange> hooks);

 private:
  void renewer_loop();
  void renew_pass();
  void run_hooks(std::vector<cli::AfterChange> hooks);
  ServedVault* find(std::string_view name);
  Frame status(const PeerInfo& peer);

  Audit& audit_;
  std::vector<std::unique_ptr<ServedVault>> vaults_;
  ServedVault* default_ = nullptr;
  std::optional<std::chrono::seconds> default_ttl_;
  std::chrono::system_clock::time_point started_ = std::chrono::system_clock::now();

  std::optional<std::chrono::seconds> renew_every_;
  std::mutex renew_mu_;
  std::condition_variable renew_cv_;
  bool renew_now_ = false;
  std::vector<cli::AfterChange> hooks_;
  std::atomic<bool> stopping_{false};
  std::thread renewer_;  // last: started once everything above exists
};

}  // namespace certvault::agent

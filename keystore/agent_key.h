// A vault key that the agent holds: what a program's provider or PKCS#11 module keeps in
// place of the private key, and the calls that reach it. The private key stays in the
// agent; a signature request carries a digest (or an Ed25519 message) and comes back
// with the signature.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "agent_client.h"
#include "signing.h"
#include "types.h"

namespace certvault::agent {

struct RemoteKey final : KeyHandle {
  std::shared_ptr<Client> client;
  std::string vault;  // as the agent was asked for it ("" = its default)
  std::string label;  // the vault's label, for messages
  std::string nickname;
  uint32_t generation = 0;
  std::string key_id;
  KeyType key_type = KeyType::kEcP256;

  KeyType type() const override { return key_type; }
  Result<std::vector<uint8_t>> sign(const SignParams& params,
                                    std::span<const uint8_t> data) const override;
};

// One usable generation as the agent resolved it: public data, and whether the vault is
// locked (then the key cannot sign until `certvault unlock`).
struct RemoteEntry {
  RemoteKey key;
  std::string serial;
  std::vector<uint8_t> cert, spki;
  std::vector<std::vector<uint8_t>> chain;  // issuer first
  bool locked = false;
  std::string locked_message() const;
};

// nullopt when the agent serves no such vault (the caller then works in-process). One
// generation by serial or by number, else the current one.
Result<std::optional<RemoteEntry>> resolve(const std::shared_ptr<Client>& client,
                                           const std::string& vault, const std::string& nickname,
                                           const std::optional<std::string>& serial,
                                           std::optional<uint32_t> generation = {});

// The vault as the agent serves it: what a PKCS#11 token shows.
struct RemoteVault {
  std::string label, id;
  bool locked = false;
  int pin_failures = 0, max_pin_failures = 10;
  uint64_t counter = 0;  // the vault's commit counter: a change means list again
};
Result<std::optional<RemoteVault>> vault_info(const std::shared_ptr<Client>& client,
                                              const std::string& vault);
// Every entry this program may see, with its usable generations (active, and superseded
// ones not yet expired); nullopt as above.
Result<std::optional<std::vector<Entry>>> entries(const std::shared_ptr<Client>& client,
                                                  const std::string& vault);
// A PIN a program gave anyway: checked by the agent, a wrong one counted.
Result<void> check_pin(const std::shared_ptr<Client>& client, const std::string& vault,
                       const SecureBytes& pin);
// Nicknames of the entries the agent lets this program see; nullopt as above.
Result<std::optional<std::vector<std::string>>> nicknames(const std::shared_ptr<Client>& client,
                                                          const std::string& vault);

// The digest names the agent takes ("sha256", ...) for an OpenSSL digest name or alias
// ("SHA2-256", "SHA256"); empty when it is none of them.
std::string canonical_digest(std::string_view name);

}  // namespace certvault::agent

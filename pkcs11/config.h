// Which vaults become slots: $CERTVAULT_PKCS11_CONF, else $sysconfdir/certvault/pkcs11.conf
// (/etc in the packages), else ~/.config/certvault/pkcs11.conf, one vault directory per
// line ("#" starts a comment); with none of them, or a file that names no vault, the vault
// of $CERTVAULT_VAULT or the default vault. A line `agent-socket = PATH` in that file names
// the agent's socket, as the provider's `agent-socket` does (docs/agent.md, "How programs
// find the agent").
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace certvault::pkcs11 {

struct SlotVault {
  std::filesystem::path dir;
  // How to name it to the agent: the directory, or "" (the agent's default vault) when
  // nothing named one and the module fell back to the default vault.
  std::string agent_name;
  // The configured agent socket (`agent-socket = PATH`); empty: $CERTVAULT_AGENT_SOCK, then
  // the default places.
  std::string agent_socket;
};
std::vector<SlotVault> configured_vaults();

}  // namespace certvault::pkcs11

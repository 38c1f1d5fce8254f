// Which vaults become slots: $CERTVAULT_PKCS11_CONF, else $sysconfdir/certvault/pkcs11.conf
// (/etc in the packages), else ~/.config/certvault/pkcs11.conf, one vault directory per
// line ("#" starts a comment); with none of them, the vault of $CERTVAULT_VAULT or the
// default vault.
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
};
std::vector<SlotVault> configured_vaults();

}  // namespace certvault::pkcs11

// Which vaults become slots: $CERTVAULT_PKCS11_CONF, else /etc/certvault/pkcs11.conf, else
// ~/.config/certvault/pkcs11.conf, one vault directory per line ("#" starts a comment);
// with none of them, the vault of $CERTVAULT_VAULT or the default vault.
#pragma once

#include <filesystem>
#include <vector>

namespace certvault::pkcs11 {

std::vector<std::filesystem::path> configured_vaults();

}  // namespace certvault::pkcs11

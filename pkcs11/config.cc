#include "config.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "agent_client.h"
#include "certvault_build.h"
#include "vault.h"

namespace certvault::pkcs11 {
namespace {

std::vector<std::filesystem::path> read_list(const std::filesystem::path& file) {
  std::vector<std::filesystem::path> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    auto first = line.find_first_not_of(" \t\r");
    auto last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos) continue;
    out.emplace_back(line.substr(first, last - first + 1));
  }
  return out;
}

}  // namespace

std::vector<SlotVault> configured_vaults() {
  std::vector<std::filesystem::path> candidates;
  if (const char* c = ::secure_getenv("CERTVAULT_PKCS11_CONF"); c && *c) candidates.emplace_back(c);
  candidates.emplace_back(CERTVAULT_SYSCONFDIR "/certvault/pkcs11.conf");
  if (const char* h = ::secure_getenv("HOME"); h && *h)
    candidates.push_back(std::filesystem::path(h) / ".config" / "certvault" / "pkcs11.conf");
  std::error_code ec;
  for (const auto& file : candidates) {
    if (!std::filesystem::is_regular_file(file, ec)) continue;
    std::vector<SlotVault> out;
    for (auto& dir : read_list(file)) out.push_back({dir, dir.string()});
    return out;
  }
  return {{default_vault_dir(), agent::default_vault_for_agent()}};
}

}  // namespace certvault::pkcs11

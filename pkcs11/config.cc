#include "config.h"

#include <cstdlib>
#include <fstream>
#include <string>
#include <string_view>

#include "agent_client.h"
#include "certvault_build.h"
#include "vault.h"

namespace certvault::pkcs11 {
namespace {

struct ConfFile {
  std::vector<std::filesystem::path> vaults;
  std::string agent_socket;
};

// `agent-socket = PATH`, or a vault directory; "#" starts a comment.
ConfFile read_conf(const std::filesystem::path& file) {
  ConfFile out;
  std::ifstream in(file);
  std::string line;
  auto trim = [](std::string_view v) {
    const auto first = v.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return std::string_view();
    return v.substr(first, v.find_last_not_of(" \t\r") - first + 1);
  };
  constexpr std::string_view kSocket = "agent-socket";
  while (std::getline(in, line)) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    const std::string_view text = trim(line);
    if (text.empty()) continue;
    if (text.starts_with(kSocket)) {
      const std::string_view rest = trim(text.substr(kSocket.size()));
      if (rest.starts_with('=')) {
        out.agent_socket = trim(rest.substr(1));
        continue;
      }
    }
    out.vaults.emplace_back(text);
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
    ConfFile conf = read_conf(file);
    if (conf.vaults.empty())
      return {{default_vault_dir(), agent::default_vault_for_agent(), conf.agent_socket}};
    std::vector<SlotVault> out;
    for (auto& dir : conf.vaults) out.push_back({dir, dir.string(), conf.agent_socket});
    return out;
  }
  return {{default_vault_dir(), agent::default_vault_for_agent(), ""}};
}

}  // namespace certvault::pkcs11

#include "cli.h"

#include "secret_input.h"
#include "suggest.h"

namespace certvault::cli {

int exit_code(Code code) {
  switch (code) {
    case Code::kInvalidInput:
      return kExitUsage;
    case Code::kNotFound:
      return kExitNotFound;
    case Code::kExists:
    case Code::kRefused:
      return kExitRefused;
    case Code::kWrongPin:
    case Code::kPinLocked:
    case Code::kLocked:
      return kExitPin;
    case Code::kTampered:
    case Code::kBadPermissions:
      return kExitDamaged;
    case Code::kIo:
    case Code::kCrypto:
      return kExitInternal;
  }
  return kExitInternal;
}

std::string_view exit_code_table() {
  return "Exit codes:\n"
         "  0  success; for check: nothing needs attention\n"
         "  1  check: something needs attention soon (expires within the window, renewal)\n"
         "  2  check: an active certificate or the vault CA has expired\n"
         "  3  usage error or invalid input\n"
         "  4  not found (vault, entry, CA or file)\n"
         "  5  refused by a rule, or already exists\n"
         "  6  wrong PIN, PIN locked, or vault locked\n"
         "  7  vault damaged or unsafe (tampered data, bad permissions)\n"
         "  8  I/O or internal failure\n";
}

std::filesystem::path vault_dir(const Globals& globals) {
  return globals.vault.empty() ? default_vault_dir() : std::filesystem::path(globals.vault);
}

std::unexpected<Error> no_entry(const Vault& vault, std::string_view nickname,
                                std::string_view otherwise) {
  std::vector<std::string> nicknames;
  for (const auto& entry : vault.entries()) nicknames.push_back(entry.nickname);
  return no_entry_named(nickname, "vault '" + vault.label() + "' (" + vault.dir().string() + ")",
                        nicknames, otherwise);
}

Result<void> must_exist(const Vault& vault, const std::string& nickname) {
  CV_CHECK(check_nickname(nickname));
  if (!vault.find(nickname)) return no_entry(vault, nickname);
  return {};
}

Result<Vault> open_vault(const Globals& globals) {
  return Vault::open(vault_dir(globals));
}

Result<void> unlock_here(const Globals& globals, Vault& vault) {
  CV_TRY(pin, read_pin(globals.pin_file,
                       "PIN for vault '" + vault.label() + "': ", {"PIN", "--pin-file"}));
  return vault.unlock(pin, Vault::Threads::kTwo);
}

Result<Vault> open_unlocked(const Globals& globals) {
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(unlock_here(globals, vault));
  return vault;
}

}  // namespace certvault::cli

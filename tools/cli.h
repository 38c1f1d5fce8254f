// What every command of the certvault CLI shares: the global options, the result type,
// opening the vault, and the conversion of keystore errors to exit codes.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "error.h"
#include "vault.h"

namespace certvault::cli {

// --vault, --pin-file, --json: accepted before or after the command name.
struct Globals {
  std::string vault;     // empty: default_vault_dir()
  std::string pin_file;  // empty: prompt on the terminal; "-": stdin
  bool json = false;
};

// A command's exit code (0, or 1/2 from `check`), or the error to report.
using Outcome = Result<int>;

// Exit codes; the table in the --help footer and docs/cli.md (certvault(1)) describe the same
// values.
enum Exit : int {
  kExitOk = 0,
  kExitExpiresSoon = 1,
  kExitExpired = 2,
  kExitUsage = 3,
  kExitNotFound = 4,
  kExitRefused = 5,
  kExitPin = 6,
  kExitDamaged = 7,
  kExitInternal = 8,
};
int exit_code(Code code);
std::string_view exit_code_table();

std::filesystem::path vault_dir(const Globals& globals);
// Public data only; never asks for the PIN.
Result<Vault> open_vault(const Globals& globals);
// Reads the PIN (--pin-file or the terminal) and unlocks `vault`.
Result<void> unlock_here(const Globals& globals, Vault& vault);
// Opens, reads the PIN and unlocks. Commands the agent can carry out open with open_vault
// and go through owner.h instead.
Result<Vault> open_unlocked(const Globals& globals);

// No entry of that nickname: "did you mean" the closest ones, else `otherwise`.
std::unexpected<Error> no_entry(
    const Vault& vault, std::string_view nickname,
    std::string_view otherwise = "`certvault list` shows the nicknames");

// The entry exists: checked before the PIN is asked for, so that a typo costs no PIN.
Result<void> must_exist(const Vault& vault, const std::string& nickname);

// Convenience for the CLI's own input checks.
inline std::unexpected<Error> invalid(std::string message) {
  return fail(Code::kInvalidInput, std::move(message));
}

}  // namespace certvault::cli

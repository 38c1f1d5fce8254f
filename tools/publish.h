// File targets (docs/lifecycle.md, "File targets"): the certificate, its chain and a
// URI-in-PEM key file, written for programs that take a certificate as a file (curl,
// Python ssl, OpenVPN, stunnel) and rewritten whenever the entry's current certificate
// changes. Each file is replaced atomically (a temporary file in the same directory,
// synced, renamed over it): a reader sees the old file or the new one, never a part.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "error.h"
#include "hook.h"
#include "types.h"
#include "vault.h"

namespace certvault::cli {

// One generation's certificate, and each certificate of its chain (issuer first), as PEM.
struct Pems {
  std::string certificate;
  std::vector<std::string> chain;
};
Result<Pems> pems_of(const Vault& vault, const std::string& nickname, uint32_t number);

// certvault:NICKNAME?vault=DIR, the directory absolute. Always with the vault: the program
// that uses the URI later resolves a URI without one from its own openssl.cnf and
// environment, where the default vault may well be another one.
Result<std::string> entry_uri(const Vault& vault, const std::string& nickname);
// The URI-in-PEM block the provider's decoder reads (docs/provider.md).
std::string uri_pem(const std::string& uri);

// Writes every file of `entry`'s targets from its current generation; one line per file
// that could not be written (the others are written all the same). Nothing when the entry
// has no targets or no current certificate.
std::vector<std::string> publish_targets(const Vault& vault, const Entry& entry);

// What follows a change of an entry's current certificate (rotate, renew, attach): its
// files are rewritten, then its command runs, with the privileges of whoever made the
// change (the CLI, or the agent on its renewal thread).
struct AfterChange {
  std::filesystem::path vault_dir;
  std::string nickname;
  uint32_t generation = 0;
  uid_t owner = 0;  // the vault's: only a process running as it carries the change out
  // The file targets and what goes into them, read when the change was made.
  std::optional<PublishTargets> targets;
  std::string certificate, key_uri_pem;
  std::vector<std::string> chain;
  std::string problem;  // why they could not be read; then nothing is written
  HookRun hook;         // an empty command: none
};
// nullopt when the entry has neither file targets nor a command.
std::optional<AfterChange> after_change_for(const Vault& vault, const Entry& entry);
// Writes the files and runs the command, when this process runs as the vault's owner; one
// line per file that could not be written and one saying how the command ended (or why
// nothing ran), for stderr or the journal.
std::vector<std::string> carry_out(const AfterChange& change,
                                   const std::atomic<bool>* stop = nullptr);
// After a command changed `entry`'s certificate: in-process (`here`), carries the change's
// follow-up out and reports on stderr; when the agent made the change, says that the
// agent does it.
void follow_up(const Vault& vault, const Entry& entry, bool here);

}  // namespace certvault::cli

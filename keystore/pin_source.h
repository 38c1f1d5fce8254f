// Where a PIN (or another secret a person gives: recovery secret, PKCS#12 password) comes
// from, with one set of rules for every front end: a file, standard input, or a no-echo
// prompt on the terminal. A PIN never ends in a line break: one trailing "\n" or "\r\n" is
// dropped wherever a PIN is given, and a new PIN that ends in one is refused. An empty
// secret is no PIN at all, never a counted attempt.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "error.h"
#include "secure.h"

namespace certvault {

inline constexpr size_t kMaxSecretBytes = 4096;  // not counting one trailing "\r\n"

// Drops one trailing "\n" or "\r\n", as `echo PIN > file` and libp11 (which passes a
// whole PIN file) leave it.
void drop_line_break(SecureBytes& secret);

// The rule for a PIN being chosen (init, passwd, reset, C_InitPIN, C_SetPIN): not empty,
// and no trailing line break that every PIN source would later drop. `noun` names it in
// the message: "the new PIN".
// A PIN chosen at the CLI is at least `min_length` bytes long (the vault policy's).
Result<void> check_pin_length(const SecureBytes& pin, uint32_t min_length, std::string_view noun);

Result<void> check_new_pin(const SecureBytes& pin, std::string_view noun);

// Reads a secret from `path`, or from standard input when `path` is "-". The file must be
// a regular file that is not a symbolic link and that neither group nor others may read
// or write; it is opened without blocking (a FIFO is refused, never waited on). At most
// kMaxSecretBytes after one trailing line break is dropped. nullopt: the file is empty,
// which is no PIN. `what` names the input in messages: "the PIN file /run/pin".
Result<std::optional<SecureBytes>> read_secret_file(const std::string& path, std::string_view what);

// The same for a systemd credential ($CREDENTIALS_DIRECTORY/NAME, LoadCredentialEncrypted=).
// systemd writes one 0400; where the file system takes ACLs and the service runs as
// another user than the service manager, the file stays root's with a read entry for that
// user, and stat() then shows the ACL's mask as group read (0440). Such a file is taken
// when its ACL lets no one read it but its owner and this process's user.
Result<std::optional<SecureBytes>> read_credential_file(const std::string& path,
                                                        std::string_view what);

enum class OnSignal {
  kLeaveAlone,       // a library inside someone else's program: never touch its handlers
  kRestoreTerminal,  // the CLI: a Ctrl-C mid-prompt must not leave echo off
};

// Asks on /dev/tty with echo off and reads one line (its line break dropped). nullopt:
// there is no terminal to ask on. The answer is empty when only Enter was pressed.
Result<std::optional<SecureBytes>> prompt_secret(std::string_view prompt, OnSignal on_signal);

}  // namespace certvault

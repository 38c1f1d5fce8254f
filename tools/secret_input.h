// PINs, passwords and recovery secrets: from a file (--pin-file and friends, "-" = stdin)
// or typed at a no-echo prompt on /dev/tty. Never held in a std::string.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "error.h"
#include "secure.h"

namespace certvault::cli {

// Names the secret in prompts and messages.
struct SecretSource {
  std::string_view noun;    // "PIN", "recovery secret"
  std::string_view option;  // the option that supplies it from a file: "--pin-file"
};

// True when /dev/tty can be opened for a prompt.
bool have_terminal();

// `file` when given (one trailing "\n" or "\r\n" dropped), else a no-echo prompt.
Result<SecureBytes> read_secret(const std::string& file, std::string_view prompt,
                                const SecretSource& source);

// A PIN being chosen: from `file`, else prompted twice. An empty PIN is refused.
Result<SecureBytes> read_new_pin(const std::string& file, const SecretSource& source);

// Interactive only: prompted twice; an empty answer keeps the current PIN (nullopt).
Result<std::optional<SecureBytes>> prompt_new_pin_or_keep();

}  // namespace certvault::cli

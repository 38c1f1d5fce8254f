// PINs, passwords and recovery secrets for the CLI: the keystore's PIN sources (a file,
// "-" for stdin, or a no-echo prompt), worded with the option that supplies each one.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "error.h"
#include "pin_source.h"
#include "secure.h"

namespace certvault::cli {

// Names the secret in prompts and messages.
struct SecretSource {
  std::string_view noun;    // "PIN", "recovery secret"
  std::string_view option;  // the option that supplies it from a file: "--pin-file"
};

// `file` when given, else a no-echo prompt. May be empty (a PKCS#12 password can be).
Result<SecureBytes> read_secret(const std::string& file, std::string_view prompt,
                                const SecretSource& source);

// The same for a secret that unlocks something: empty is no secret, refused before anything
// is tried (and so never counted as a wrong PIN).
Result<SecureBytes> read_pin(const std::string& file, std::string_view prompt,
                             const SecretSource& source);

// A PIN being chosen: from `file`, else prompted twice (three tries). The keystore's rule
// for new PINs applies (not empty, no trailing line break), and at least `min_length`.
Result<SecureBytes> read_new_pin(const std::string& file, const SecretSource& source,
                                 uint32_t min_length);

// Interactive only: prompted twice (three tries); an empty answer keeps the current PIN
// (nullopt).
Result<std::optional<SecureBytes>> prompt_new_pin_or_keep(uint32_t min_length);

}  // namespace certvault::cli

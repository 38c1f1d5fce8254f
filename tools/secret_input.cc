#include "secret_input.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>

namespace certvault::cli {
namespace {

std::string file_name(const std::string& file, const SecretSource& source) {
  return file == "-" ? "the " + std::string(source.noun) + " on stdin (" +
                           std::string(source.option) + " -)"
                     : "the " + std::string(source.noun) + " file '" + file + "' (" +
                           std::string(source.option) + ")";
}

std::unexpected<Error> no_terminal(const SecretSource& source) {
  return fail(Code::kInvalidInput, "cannot ask for the " + std::string(source.noun) +
                                       ": no terminal; pass " + std::string(source.option) +
                                       " FILE (or " + std::string(source.option) +
                                       " - to read it from stdin)");
}

// Whether `file` is in the systemd credentials directory of this service
// ($CREDENTIALS_DIRECTORY, as `--pin-file %d/certvault-pin` names it in a unit): such a
// file is read as systemd leaves it (read_credential_file).
bool systemd_credential(const std::string& file) {
  const char* dir = ::secure_getenv("CREDENTIALS_DIRECTORY");
  if (!dir || !*dir || file == "-") return false;
  std::error_code a, b;
  const auto parent =
      std::filesystem::weakly_canonical(std::filesystem::path(file).parent_path(), a);
  const auto creds = std::filesystem::weakly_canonical(std::filesystem::path(dir), b);
  return !a && !b && parent == creds;
}

// nullopt: the file was empty or nothing was typed.
Result<std::optional<SecureBytes>> read_any(const std::string& file, std::string_view prompt_text,
                                            const SecretSource& source) {
  if (!file.empty())
    return systemd_credential(file) ? read_credential_file(file, file_name(file, source))
                                    : read_secret_file(file, file_name(file, source));
  // The CLI owns its process: a Ctrl-C at the prompt must leave the terminal echoing.
  CV_TRY(typed, prompt_secret(prompt_text, OnSignal::kRestoreTerminal));
  if (!typed) return no_terminal(source);
  if (typed->empty()) return std::optional<SecureBytes>();
  return typed;
}

Result<SecureBytes> prompt_once(std::string_view text, const SecretSource& source) {
  CV_TRY(typed, prompt_secret(text, OnSignal::kRestoreTerminal));
  if (!typed) return no_terminal(source);
  return std::move(*typed);
}

// A PIN typed at the terminal, then typed again: one the rules refuse, or two that differ,
// asks again, three times in all. nullopt: Enter alone, when `may_keep`.
Result<std::optional<SecureBytes>> prompt_chosen(std::string_view prompt,
                                                 const SecretSource& source, uint32_t min_length,
                                                 bool may_keep) {
  constexpr int kTries = 3;
  const std::string noun = "the " + std::string(source.noun);
  std::string why;
  for (int i = 0; i < kTries; ++i) {
    if (i > 0) std::cerr << "certvault: " << why << "; try again\n" << std::flush;
    CV_TRY(pin, prompt_once(prompt, source));
    if (may_keep && pin.empty()) return std::optional<SecureBytes>();
    auto rules = check_new_pin(pin, noun);
    if (rules) rules = check_pin_length(pin, min_length, noun);
    if (!rules) {
      why = rules.error().message;
      continue;
    }
    CV_TRY(second, prompt_once("Repeat the new PIN: ", source));
    if (pin == second) return std::optional<SecureBytes>(std::move(pin));
    why = "the two PINs differ";
  }
  return fail(Code::kInvalidInput,
              why + " (" + std::to_string(kTries) + " tries); run the command again");
}

}  // namespace

Result<SecureBytes> read_secret(const std::string& file, std::string_view prompt_text,
                                const SecretSource& source) {
  CV_TRY(secret, read_any(file, prompt_text, source));
  return secret ? std::move(*secret) : SecureBytes();
}

Result<SecureBytes> read_pin(const std::string& file, std::string_view prompt_text,
                             const SecretSource& source) {
  CV_TRY(secret, read_any(file, prompt_text, source));
  if (!secret) {
    return fail(Code::kInvalidInput, (file.empty() ? "no " + std::string(source.noun) + " was typed"
                                                   : file_name(file, source) + " is empty") +
                                         "; nothing was tried; give the " +
                                         std::string(source.noun));
  }
  return std::move(*secret);
}

Result<SecureBytes> read_new_pin(const std::string& file, const SecretSource& source,
                                 uint32_t min_length) {
  const std::string noun = "the " + std::string(source.noun);
  if (!file.empty()) {
    CV_TRY(pin, read_secret(file, "", source));
    CV_CHECK(check_new_pin(pin, noun));
    CV_CHECK(check_pin_length(pin, min_length, noun));
    return pin;
  }
  CV_TRY(pin, prompt_chosen("New PIN: ", source, min_length, false));
  return std::move(*pin);
}

Result<std::optional<SecureBytes>> prompt_new_pin_or_keep(uint32_t min_length) {
  return prompt_chosen("New PIN (press Enter to keep the current PIN): ",
                       {"new PIN", "--new-pin-file"}, min_length, true);
}

}  // namespace certvault::cli

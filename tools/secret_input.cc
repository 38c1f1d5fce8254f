#include "secret_input.h"

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

// nullopt: the file was empty or nothing was typed.
Result<std::optional<SecureBytes>> read_any(const std::string& file, std::string_view prompt_text,
                                            const SecretSource& source) {
  if (!file.empty()) return read_secret_file(file, file_name(file, source));
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

Result<void> confirm(const SecureBytes& first, const SecretSource& source) {
  CV_TRY(second, prompt_once("Repeat the new PIN: ", source));
  if (!(first == second)) {
    return fail(Code::kInvalidInput,
                "the two PINs differ; run the command again and type the same PIN twice");
  }
  return {};
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

Result<SecureBytes> read_new_pin(const std::string& file, const SecretSource& source) {
  const std::string noun = "the " + std::string(source.noun);
  if (!file.empty()) {
    CV_TRY(pin, read_secret(file, "", source));
    CV_CHECK(check_new_pin(pin, noun));
    return pin;
  }
  CV_TRY(pin, prompt_once("New PIN: ", source));
  CV_CHECK(check_new_pin(pin, noun));
  CV_CHECK(confirm(pin, source));
  return pin;
}

Result<std::optional<SecureBytes>> prompt_new_pin_or_keep() {
  SecretSource source{"new PIN", "--new-pin-file"};
  CV_TRY(pin, prompt_once("New PIN (press Enter to keep the current PIN): ", source));
  if (pin.empty()) return std::optional<SecureBytes>();
  CV_CHECK(check_new_pin(pin, "the new PIN"));
  CV_CHECK(confirm(pin, source));
  return std::optional<SecureBytes>(std::move(pin));
}

}  // namespace certvault::cli

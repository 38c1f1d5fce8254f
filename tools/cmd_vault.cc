// init, passwd, unlock-reset, version: the vault itself and its PIN.
#include <openssl/crypto.h>
#include <sodium.h>

#include <filesystem>
#include <iostream>

#include "certvault_build.h"
#include "commands.h"
#include "output.h"
#include "secret_input.h"

namespace certvault::cli {
namespace {

const SecretSource kPin{"PIN", "--pin-file"};
const SecretSource kNewPin{"new PIN", "--new-pin-file"};
const SecretSource kRecovery{"recovery secret", "--recovery-file"};

// Range checks are the keystore's (check_init), made before any PIN is asked for.
InitOptions init_options(const InitArgs& args) {
  InitOptions options;
  if (args.label) options.label = *args.label;
  if (args.kdf_ops) options.kdf.ops = static_cast<uint64_t>(std::max<int64_t>(*args.kdf_ops, 0));
  if (args.kdf_mem_kib)
    options.kdf.mem_bytes = static_cast<uint64_t>(std::max<int64_t>(*args.kdf_mem_kib, 0)) * 1024;
  return options;
}

void print_recovery(const Globals& globals, const Vault& vault, const SecureBytes& recovery) {
  if (globals.json) {
    Json::Value fields(Json::objectValue);
    fields["vault"] = vault.dir().string();
    fields["label"] = vault.label();
    fields["id"] = vault.id();
    return print_json_with_secret(fields, "recovery_secret", recovery);
  }
  std::cout << "Created vault '" << vault.label() << "' in " << vault.dir().string() << ".\n\n"
            << "Recovery secret (shown once): ";
  write_secret(recovery);
  std::cout << "\n\nStore the recovery secret offline (on paper, or in a password safe on another\n"
               "device). It is the only way to reset the PIN after too many wrong attempts,\n"
               "and certvault cannot show it again.\n";
}

void report_pin_change(const Globals& globals, const Vault& vault, std::string_view sentence,
                       bool pin_changed) {
  if (!globals.json) {
    std::cout << sentence << '\n';
    return;
  }
  Json::Value out(Json::objectValue);
  out["vault"] = vault.dir().string();
  out["label"] = vault.label();
  out["pin_changed"] = pin_changed;
  out["pin_failures"] = vault.pin_failures();
  print_json(out);
}

}  // namespace

Outcome cmd_init(const Globals& globals, const InitArgs& args) {
  const InitOptions options = init_options(args);
  auto dir = vault_dir(globals);
  CV_CHECK(check_init(dir, options));
  CV_TRY(pin, read_new_pin(globals.pin_file, kPin, kDefaultMinPinLength));
  CV_TRY(made, Vault::init(dir, pin, options));
  print_recovery(globals, made.first, made.second);
  return kExitOk;
}

Outcome cmd_passwd(const Globals& globals, const PasswdArgs& args) {
  CV_CHECK(check_stdin_once("--pin-file", globals.pin_file, "--new-pin-file", args.new_pin_file));
  CV_TRY(vault, open_unlocked(globals));
  CV_TRY(pin, read_new_pin(args.new_pin_file, kNewPin, vault.policy().min_pin_length));
  CV_CHECK(vault.change_pin(pin));
  report_pin_change(globals, vault, "Changed the PIN of vault '" + vault.label() + "'.", true);
  return kExitOk;
}

Outcome cmd_unlock_reset(const Globals& globals, const UnlockResetArgs& args) {
  CV_CHECK(
      check_stdin_once("--recovery-file", args.recovery_file, "--new-pin-file", args.new_pin_file));
  CV_TRY(vault, open_vault(globals));
  CV_TRY(recovery, read_pin(args.recovery_file, "Recovery secret: ", kRecovery));
  CV_CHECK(vault.check_recovery_format(recovery));  // before a new PIN is asked for
  std::optional<SecureBytes> pin;
  if (!args.new_pin_file.empty()) {
    CV_TRY(chosen, read_new_pin(args.new_pin_file, kNewPin, vault.policy().min_pin_length));
    pin = std::move(chosen);
  } else if (args.recovery_file.empty()) {
    // Typed at a prompt: the user is there to choose a new PIN too (or keep the old one).
    CV_TRY(chosen, prompt_new_pin_or_keep(vault.policy().min_pin_length));
    pin = std::move(chosen);
  }
  CV_CHECK(vault.reset_pin(recovery, pin ? &*pin : nullptr));
  report_pin_change(globals, vault,
                    "Reset the PIN failure count of vault '" + vault.label() + "'" +
                        (pin ? " and set the new PIN." : "; the PIN is unchanged."),
                    pin.has_value());
  return kExitOk;
}

std::string version_line() {
  return std::string("certvault ") + CERTVAULT_VERSION + " (OpenSSL " +
         OpenSSL_version(OPENSSL_VERSION_STRING) + ", libsodium " + sodium_version_string() + ")";
}

Outcome cmd_version(const Globals& globals) {
  if (!globals.json) {
    std::cout << version_line() << '\n';
    return kExitOk;
  }
  Json::Value out(Json::objectValue);
  out["version"] = CERTVAULT_VERSION;
  out["openssl"] = OpenSSL_version(OPENSSL_VERSION_STRING);
  out["libsodium"] = sodium_version_string();
  print_json(out);
  return kExitOk;
}

}  // namespace certvault::cli

// Errors are values inside the keystore: an error code and one human sentence that says
// what failed, which input, and what to do. Each boundary (CLI, provider, PKCS#11 module)
// converts them once. Messages never contain secrets. An error that programs meet too and
// that only the CLI's user can act on says what is wrong, and leaves the certvault command
// to run to the CLI (Remedy).
#pragma once

#include <cstdint>
#include <expected>
#include <string>

namespace certvault {

enum class Code {
  kInvalidInput,    // ill-formed argument: nickname, date, subject, file content
  kNotFound,        // no such vault, entry, CA or file
  kExists,          // the name or vault is already taken
  kRefused,         // a rule says no: end date limit, export once, disabled entry
  kWrongPin,        // PIN or recovery secret did not unlock the vault
  kPinLocked,       // too many wrong PINs; the recovery secret resets it
  kLocked,          // the operation needs the PIN and the vault is not unlocked
  kTampered,        // authentication of vault data failed
  kBadPermissions,  // vault directory or file readable/writable by others
  kIo,              // the operating system refused a read or write
  kCrypto,          // OpenSSL or libsodium failed unexpectedly
};

// What the CLI tells its user to do about an error that programs see too. A program (through
// the provider, the module or the agent) gets the message alone, in words for any program
// ("'api' is disabled"); naming a certvault command is the CLI's business, and the CLI
// builds those words from the remedy (tools/certvault.cc, with_advice). New remedies go
// before kCount: the agent's protocol carries them by number.
enum class Remedy : uint8_t {
  kNone,
  kEnable,           // the entry is disabled
  kAttach,           // the entry waits for its certificate
  kShowGenerations,  // the entry has no such generation
  kList,             // no entry has that nickname, and none is close to it
  kInit,             // no vault in that directory
  kRecover,          // the vault is locked by wrong PINs: the recovery secret resets it
  kSetUserPin,       // the vault has no user PIN yet: the security officer sets one
  kRewriteCounter,   // the wrong-PIN counter is damaged: the recovery secret rewrites it
  kCount,            // not a remedy: how many there are
};

struct Error {
  Code code;
  std::string message;
  // A server's own word on when to ask again (HTTP Retry-After), in seconds since the
  // epoch; 0: it gave none.
  int64_t retry_after = 0;
  Remedy remedy = Remedy::kNone;
  std::string nickname = {};  // the entry the remedy is about, when it is about one
};

template <typename T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Code code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

inline std::unexpected<Error> fail(Code code, std::string message, Remedy remedy,
                                   std::string nickname = {}) {
  return std::unexpected(Error{code, std::move(message), 0, remedy, std::move(nickname)});
}

// Propagates the error of an expression that yields a Result, else yields its value.
#define CV_TRY(var, expr)                                            \
  auto var##_result_ = (expr);                                       \
  if (!var##_result_) return std::unexpected(var##_result_.error()); \
  auto var = std::move(*var##_result_)

#define CV_CHECK(expr)                                                       \
  do {                                                                       \
    auto cv_check_result_ = (expr);                                          \
    if (!cv_check_result_) return std::unexpected(cv_check_result_.error()); \
  } while (0)

}  // namespace certvault

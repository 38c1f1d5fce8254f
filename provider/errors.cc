#include "errors.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "provider.h"

namespace certvault::provider {

const OSSL_ITEM kReasonStrings[] = {
    {kBadUri, const_cast<char*>("malformed certvault URI")},
    {kNoSuchEntry, const_cast<char*>("no such vault entry")},
    {kEntryUnusable, const_cast<char*>("vault entry cannot be used")},
    {kNoPin, const_cast<char*>("no PIN available")},
    {kWrongPin, const_cast<char*>("wrong PIN")},
    {kPinLocked, const_cast<char*>("PIN locked")},
    {kVaultUnusable, const_cast<char*>("vault cannot be used")},
    {kKeyOperation, const_cast<char*>("key operation failed")},
    {kNotSupported, const_cast<char*>("operation not supported")},
    {kInternal, const_cast<char*>("internal error")},
    {0, nullptr},
};

namespace {

void set_error(const ProvCtx* ctx, Reason reason, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  ctx->core.vset_error(ctx->handle, static_cast<uint32_t>(reason), fmt, args);
  va_end(args);
}

}  // namespace

void raise(const ProvCtx* ctx, Reason reason, std::string_view message, const char* file, int line,
           const char* func) noexcept {
  CV_DEBUG("error (reason %d) at %s:%d: %.*s", static_cast<int>(reason), func, line,
           static_cast<int>(message.size()), message.data());
  if (!ctx || !ctx->core.new_error || !ctx->core.vset_error) return;
  // Inside a lambda __func__ is "operator()", which tells a reader nothing.
  if (func && std::strcmp(func, "operator()") == 0) func = "certvault";
  ctx->core.new_error(ctx->handle);
  if (ctx->core.set_error_debug) ctx->core.set_error_debug(ctx->handle, file, line, func);
  set_error(ctx, reason, "%.*s", static_cast<int>(message.size()), message.data());
}

Reason reason_for(Code code) {
  switch (code) {
    case Code::kInvalidInput:
      return kBadUri;
    case Code::kNotFound:
      return kNoSuchEntry;
    case Code::kRefused:
      return kEntryUnusable;
    case Code::kWrongPin:
      return kWrongPin;
    case Code::kPinLocked:
      return kPinLocked;
    case Code::kLocked:
      return kNoPin;
    case Code::kCrypto:
      return kKeyOperation;
    default:
      return kVaultUnusable;
  }
}

void raise(const ProvCtx* ctx, const Error& e, const char* file, int line,
           const char* func) noexcept {
  raise(ctx, reason_for(e.code), e.message, file, line, func);
}

namespace {

// CERTVAULT_DEBUG unset, empty or "0": off; a path starting with '/': appended there;
// anything else: stderr. secure_getenv: in a setuid or setgid program (which loads the
// provider when openssl.cnf names it) the variable is not there, so nobody can make such a
// program write where they cannot. The file is never reached through a symbolic link and
// is created owner-only.
FILE* debug_stream() {
  static FILE* stream = []() -> FILE* {
    const char* v = ::secure_getenv("CERTVAULT_DEBUG");
    if (!v || !*v || std::strcmp(v, "0") == 0) return nullptr;
    if (v[0] != '/') return stderr;
    const int fd = ::open(v, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      if (FILE* f = ::fdopen(fd, "a")) return f;
      const int err = errno;
      ::close(fd);
      errno = err;
    }
    std::fprintf(stderr,
                 "certvault-provider: cannot open the debug log %s (%s); logging to "
                 "standard error instead\n",
                 v, std::strerror(errno));
    return stderr;
  }();
  return stream;
}

}  // namespace

bool debug_enabled() {
  return debug_stream() != nullptr;
}

void debug_log(const char* fmt, ...) {
  FILE* out = debug_stream();
  if (!out) return;
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::fputs("certvault-provider: ", out);
  va_list args;
  va_start(args, fmt);
  std::vfprintf(out, fmt, args);
  va_end(args);
  std::fputc('\n', out);
  std::fflush(out);
}

}  // namespace certvault::provider

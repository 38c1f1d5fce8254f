// Errors go to OpenSSL's error queue under this provider's library code, with reason
// strings; the debug log switched on by CERTVAULT_DEBUG is keystore/debug.h.
#pragma once

#include <openssl/core.h>

#include <new>
#include <string_view>

#include "debug.h"
#include "error.h"

namespace certvault::provider {

struct ProvCtx;

// Reason codes; their text is in kReasonStrings (provider.cc answers
// OSSL_FUNC_PROVIDER_GET_REASON_STRINGS with it).
enum Reason : int {
  kBadUri = 1,
  kNoSuchEntry,
  kEntryUnusable,
  kNoPin,
  kWrongPin,
  kPinLocked,
  kVaultUnusable,
  kKeyOperation,
  kNotSupported,
  kInternal,
};
extern const OSSL_ITEM kReasonStrings[];

// Pushes one error with `message` (never a secret) onto the caller's error queue.
void raise(const ProvCtx* ctx, Reason reason, std::string_view message, const char* file, int line,
           const char* func) noexcept;
// The reason for a keystore error, and the error pushed.
Reason reason_for(Code code);
void raise(const ProvCtx* ctx, const Error& e, const char* file, int line,
           const char* func) noexcept;

// One entry of an OSSL_DISPATCH table.
#define FN(id, f) \
  { id, reinterpret_cast<void (*)(void)>(f) }

#define CV_RAISE(ctx, what, ...) \
  ::certvault::provider::raise(ctx, what, ##__VA_ARGS__, __FILE__, __LINE__, __func__)

// The C boundary: runs `f`, turning any C++ exception into `on_error` (and an error on
// the queue when `ctx` is given), so that nothing unwinds into OpenSSL or its host.
template <typename R, typename F>
R guarded(const ProvCtx* ctx, R on_error, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    raise(ctx, kInternal, "out of memory", __FILE__, __LINE__, "certvault");
  } catch (...) {
    raise(ctx, kInternal, "unexpected failure in the certvault provider", __FILE__, __LINE__,
          "certvault");
  }
  return on_error;
}

// The shared debug log (keystore/debug.h), as "certvault-provider".
#define CV_DEBUG(...) CV_DEBUG_AS("certvault-provider", __VA_ARGS__)

}  // namespace certvault::provider

#include "errors.h"

#include <cstdarg>
#include <cstring>

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

}  // namespace certvault::provider

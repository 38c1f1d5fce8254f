// The provider's entry point and base functions (provider-base(7)). Every operation is
// registered when the provider loads; loading needs nothing but the vault (and reads
// nothing from it until a URI is opened).
#include "provider.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>

#include "errors.h"
#include "ossl.h"
#include "secure.h"
#include "vaults.h"

#ifndef CERTVAULT_VERSION
#define CERTVAULT_VERSION "0"
#endif

namespace certvault::provider {

ProvCtx::~ProvCtx() = default;

namespace {

// Activations alive; the keystore's library context is freed with the last one.
std::mutex g_mu;
int g_active = 0;

const OSSL_PARAM* gettable_params(void*) {
  static const OSSL_PARAM kParams[] = {OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_NAME, nullptr, 0),
                                       OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_VERSION, nullptr, 0),
                                       OSSL_PARAM_utf8_ptr(OSSL_PROV_PARAM_BUILDINFO, nullptr, 0),
                                       OSSL_PARAM_int(OSSL_PROV_PARAM_STATUS, nullptr),
                                       OSSL_PARAM_END};
  return kParams;
}

int get_params(void*, OSSL_PARAM params[]) {
  OSSL_PARAM* p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
  if (p && !OSSL_PARAM_set_utf8_ptr(p, "certvault")) return 0;
  p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
  if (p && !OSSL_PARAM_set_utf8_ptr(p, CERTVAULT_VERSION)) return 0;
  p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
  if (p && !OSSL_PARAM_set_utf8_ptr(p, "certvault " CERTVAULT_VERSION)) return 0;
  p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
  if (p && !OSSL_PARAM_set_int(p, 1)) return 0;
  return 1;
}

const OSSL_ALGORITHM* query(void*, int operation_id, int* no_cache) {
  *no_cache = 0;
  switch (operation_id) {
    case OSSL_OP_STORE:
      return kStoreAlgorithms;
    case OSSL_OP_KEYMGMT:
      return kKeymgmtAlgorithms;
    case OSSL_OP_SIGNATURE:
      return kSignatureAlgorithms;
    case OSSL_OP_DECODER:
      return kDecoderAlgorithms;
    case OSSL_OP_ENCODER:
      return kEncoderAlgorithms;
    default:
      return nullptr;
  }
}

// TLS groups whose keys this provider's EC KEYMGMT makes (by passing the work to the
// default provider in the keystore's context). libssl 3.0 offers a group only when the
// KEYMGMT it fetches for the group's algorithm comes from a provider that declares the
// group; when certvault is activated before `default`, that KEYMGMT is this one, so
// without these the NIST curves would vanish from ClientHello.
struct Group {
  const char* name;
  const char* internal;
  unsigned int id;
  unsigned int bits;
};
constexpr Group kGroups[] = {{"secp256r1", "prime256v1", 23, 128},
                             {"secp384r1", "secp384r1", 24, 192},
                             {"secp521r1", "secp521r1", 25, 256}};

int tls_group(const Group& g, OSSL_CALLBACK* cb, void* arg) {
  unsigned int id = g.id, bits = g.bits;
  int min_tls = 0x0301, max_tls = 0, min_dtls = static_cast<int>(0xFEFF), max_dtls = 0;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME, const_cast<char*>(g.name),
                                       0),
      OSSL_PARAM_construct_utf8_string(OSSL_CAPABILITY_TLS_GROUP_NAME_INTERNAL,
                                       const_cast<char*>(g.internal), 0),
      OSSL_PARAM_construct_utf8_string(OSSL_CAPABILITY_TLS_GROUP_ALG, const_cast<char*>("EC"), 0),
      OSSL_PARAM_construct_uint(OSSL_CAPABILITY_TLS_GROUP_ID, &id),
      OSSL_PARAM_construct_uint(OSSL_CAPABILITY_TLS_GROUP_SECURITY_BITS, &bits),
      OSSL_PARAM_construct_int(OSSL_CAPABILITY_TLS_GROUP_MIN_TLS, &min_tls),
      OSSL_PARAM_construct_int(OSSL_CAPABILITY_TLS_GROUP_MAX_TLS, &max_tls),
      OSSL_PARAM_construct_int(OSSL_CAPABILITY_TLS_GROUP_MIN_DTLS, &min_dtls),
      OSSL_PARAM_construct_int(OSSL_CAPABILITY_TLS_GROUP_MAX_DTLS, &max_dtls),
      OSSL_PARAM_construct_end()};
  return cb(params, arg);
}

int get_capabilities(void*, const char* capability, OSSL_CALLBACK* cb, void* arg) {
  if (!capability || std::strcmp(capability, "TLS-GROUP") != 0) return 0;
  for (const Group& g : kGroups)
    if (!tls_group(g, cb, arg)) return 0;
  return 1;
}

const OSSL_ITEM* reason_strings(void*) {
  return kReasonStrings;
}

void teardown(void* provctx) {
  try {
    delete static_cast<ProvCtx*>(provctx);  // unlocked vaults wipe their secrets
    std::lock_guard lock(g_mu);
    if (--g_active == 0) ossl::release_libctx();
  } catch (...) {
  }
}

#define FN(id, f) \
  { id, reinterpret_cast<void (*)(void)>(f) }

const OSSL_DISPATCH kProviderFunctions[] = {
    FN(OSSL_FUNC_PROVIDER_TEARDOWN, teardown),
    FN(OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, gettable_params),
    FN(OSSL_FUNC_PROVIDER_GET_PARAMS, get_params),
    FN(OSSL_FUNC_PROVIDER_QUERY_OPERATION, query),
    FN(OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, reason_strings),
    FN(OSSL_FUNC_PROVIDER_GET_CAPABILITIES, get_capabilities),
    {0, nullptr}};

void read_core(const OSSL_DISPATCH* in, Core& core) {
  for (; in && in->function_id != 0; ++in) {
    switch (in->function_id) {
      case OSSL_FUNC_CORE_GET_PARAMS:
        core.get_params = OSSL_FUNC_core_get_params(in);
        break;
      case OSSL_FUNC_CORE_NEW_ERROR:
        core.new_error = OSSL_FUNC_core_new_error(in);
        break;
      case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
        core.set_error_debug = OSSL_FUNC_core_set_error_debug(in);
        break;
      case OSSL_FUNC_CORE_VSET_ERROR:
        core.vset_error = OSSL_FUNC_core_vset_error(in);
        break;
      case OSSL_FUNC_BIO_READ_EX:
        core.bio_read_ex = OSSL_FUNC_BIO_read_ex(in);
        break;
      case OSSL_FUNC_BIO_WRITE_EX:
        core.bio_write_ex = OSSL_FUNC_BIO_write_ex(in);
        break;
      default:
        break;
    }
  }
}

int init(const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in, const OSSL_DISPATCH** out,
         void** provctx) {
  auto ctx = std::make_unique<ProvCtx>();
  ctx->handle = handle;
  read_core(in, ctx->core);
  if (!ctx->core.get_params || !ctx->core.new_error || !ctx->core.vset_error ||
      !ctx->core.bio_read_ex || !ctx->core.bio_write_ex)
    return 0;
  // The provider's section of openssl.cnf: vault = DIR, pin-source = file:PATH.
  const char* vault = nullptr;
  const char* pin_source = nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_ptr("vault", const_cast<char**>(&vault), 0),
      OSSL_PARAM_construct_utf8_ptr("pin-source", const_cast<char**>(&pin_source), 0),
      OSSL_PARAM_construct_end()};
  if (!ctx->core.get_params(handle, params)) return 0;
  if (vault && *vault) ctx->vault = vault;
  if (pin_source && *pin_source) ctx->pin_source = pin_source;
  if (!sodium_ready()) return 0;
  {
    std::lock_guard lock(g_mu);
    if (!ossl::libctx()) return 0;
    ++g_active;
  }
  ctx->vaults = std::make_unique<Vaults>(ctx.get());
  CV_DEBUG("loaded; vault %s, pin-source %s", ctx->vault.empty() ? "(default)" : ctx->vault.c_str(),
           ctx->pin_source.empty() ? "(none)" : "(configured)");
  *out = kProviderFunctions;
  *provctx = ctx.release();
  return 1;
}

}  // namespace
}  // namespace certvault::provider

extern "C" __attribute__((visibility("default"))) int OSSL_provider_init(
    const OSSL_CORE_HANDLE* handle, const OSSL_DISPATCH* in, const OSSL_DISPATCH** out,
    void** provctx) {
  try {
    return certvault::provider::init(handle, in, out, provctx);
  } catch (...) {
    return 0;
  }
}

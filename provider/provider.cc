// The provider's entry point and base functions (provider-base(7)). Every operation is
// registered when the provider loads; loading needs nothing but the vault (and reads
// nothing from it until a URI is opened).
#include "provider.h"

#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/provider.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>
#include <string_view>

#include "certvault_build.h"
#include "errors.h"
#include "ossl.h"
#include "secure.h"
#include "vaults.h"

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

// TLS-GROUP capabilities (provider-base(7)). libssl 3.0 takes a group from a provider only
// when the KEYMGMT it fetches for the group's algorithm comes from that provider; when
// certvault is activated before `default`, the EC KEYMGMT is this one, and the default
// provider's EC groups are ignored. So this provider declares them: every TLS-GROUP entry
// of the default provider in the keystore's library context (where our EC KEYMGMT sends
// the work) whose algorithm our KEYMGMT registers, aliases ("P-256") included.

// Whether `alg` is one of the names of an algorithm in kKeymgmtAlgorithms.
bool keymgmt_handles(std::string_view alg) {
  for (const OSSL_ALGORITHM* a = kKeymgmtAlgorithms; a->algorithm_names; ++a) {
    std::string_view names = a->algorithm_names;
    for (size_t at = 0; at <= names.size();) {
      size_t end = names.find(':', at);
      if (end == std::string_view::npos) end = names.size();
      const std::string_view name = names.substr(at, end - at);
      if (name.size() == alg.size() &&
          std::equal(name.begin(), name.end(), alg.begin(), [](char x, char y) {
            return std::tolower(static_cast<unsigned char>(x)) ==
                   std::tolower(static_cast<unsigned char>(y));
          }))
        return true;
      at = end + 1;
    }
  }
  return false;
}

struct GroupForward {
  OSSL_CALLBACK* cb;
  void* arg;
  bool found = false;  // the default provider was there to ask
  int ok = 1;
};

int forward_group(const OSSL_PARAM params[], void* arg) {
  auto* f = static_cast<GroupForward*>(arg);
  const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_CAPABILITY_TLS_GROUP_ALG);
  const char* alg = nullptr;
  if (!p || !OSSL_PARAM_get_utf8_string_ptr(p, &alg) || !alg || !keymgmt_handles(alg)) return 1;
  return f->cb(params, f->arg);
}

int forward_from_default(OSSL_PROVIDER* prov, void* arg) {
  auto* f = static_cast<GroupForward*>(arg);
  const char* name = OSSL_PROVIDER_get0_name(prov);
  if (f->found || !name || std::strcmp(name, "default") != 0) return 1;
  f->found = true;
  f->ok = OSSL_PROVIDER_get_capabilities(prov, "TLS-GROUP", forward_group, f);
  return 1;
}

int get_capabilities(void*, const char* capability, OSSL_CALLBACK* cb, void* arg) {
  if (!capability || std::strcmp(capability, "TLS-GROUP") != 0) return 0;
  return guarded(nullptr, 0, [&] {
    OSSL_LIB_CTX* inner = ossl::libctx();
    if (!inner) return 0;
    GroupForward f{cb, arg};
    OSSL_PROVIDER_do_all(inner, forward_from_default, &f);
    return f.found && f.ok ? 1 : 0;
  });
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
  // The provider's section of openssl.cnf: vault = DIR, pin-source = file:PATH,
  // agent-socket = PATH.
  const char* vault = nullptr;
  const char* pin_source = nullptr;
  const char* agent_socket = nullptr;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_ptr("vault", const_cast<char**>(&vault), 0),
      OSSL_PARAM_construct_utf8_ptr("pin-source", const_cast<char**>(&pin_source), 0),
      OSSL_PARAM_construct_utf8_ptr("agent-socket", const_cast<char**>(&agent_socket), 0),
      OSSL_PARAM_construct_end()};
  if (!ctx->core.get_params(handle, params)) return 0;
  if (vault && *vault) ctx->vault = vault;
  if (pin_source && *pin_source) ctx->pin_source = pin_source;
  if (agent_socket && *agent_socket) ctx->agent_socket = agent_socket;
  if (!sodium_ready()) return 0;
  ctx->vaults = std::make_unique<Vaults>(ctx.get());
  CV_DEBUG("loaded; vault %s, pin-source %s", ctx->vault.empty() ? "(default)" : ctx->vault.c_str(),
           ctx->pin_source.empty() ? "(none)" : "(configured)");
  // Counted last: nothing after this can fail, so an activation that fails never holds a
  // count that no teardown would give back.
  {
    std::lock_guard lock(g_mu);
    if (!ossl::libctx()) return 0;
    ++g_active;
  }
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

// KEYMGMT for RSA, EC (P-256, P-384) and Ed25519 (provider-keymgmt(7)). A vault key is
// held as the keystore's handle that signs with it: its private half stays in the keystore
// (or the agent) and is never exported; every public question is answered by the public
// key kept beside it.
// Keys that are not vault keys (imported or generated here because a caller fetched this
// provider's KEYMGMT for an ordinary key) are kept whole in the same context, so that
// such a caller loses nothing: every copy is a copy (never a second handle on the same
// EVP_PKEY), and checks, `has` and exports answer for what the key really holds.
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cstring>
#include <memory>
#include <new>

#include "errors.h"
#include "key.h"
#include "ossl.h"
#include "provider.h"

namespace certvault::provider {
namespace {

// KEYMGMT's own data when a key is being made here: the generation context in the
// keystore's library context (provider-keymgmt(7), "Key Objects").
struct GenCtx {
  Algo algo;
  int selection = 0;
  ossl::PkeyCtx inner;
};

bool has_private_param(Algo a, const OSSL_PARAM params[]) {
  if (!params) return false;
  return OSSL_PARAM_locate_const(
             params, a == Algo::kRsa ? OSSL_PKEY_PARAM_RSA_D : OSSL_PKEY_PARAM_PRIV_KEY) != nullptr;
}

int evp_selection(int selection) {
  if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) return EVP_PKEY_KEYPAIR;
  if (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) return EVP_PKEY_PUBLIC_KEY;
  return EVP_PKEY_KEY_PARAMETERS;
}

// Frees what EVP_PKEY_todata() made, wiping each value first, since it may hold a private
// key (OSSL_PARAM_clear_free() is OpenSSL 3.2+). Pointer types are left alone: their
// data_size is the size of what they point to, not of the pointer.
void clear_free(OSSL_PARAM* params) {
  if (!params) return;
  for (OSSL_PARAM* p = params; p->key; ++p) {
    const bool inline_value =
        p->data_type == OSSL_PARAM_INTEGER || p->data_type == OSSL_PARAM_UNSIGNED_INTEGER ||
        p->data_type == OSSL_PARAM_REAL || p->data_type == OSSL_PARAM_UTF8_STRING ||
        p->data_type == OSSL_PARAM_OCTET_STRING;
    if (inline_value && p->data && p->data_size) OPENSSL_cleanse(p->data, p->data_size);
  }
  OSSL_PARAM_free(params);
}
using ExportedParams = std::unique_ptr<OSSL_PARAM, decltype(&clear_free)>;

// Whether `p` holds a public key. Only an EC key can hold its group alone; an RSA or
// Ed25519 key is never made here without its public half.
bool holds_public(Algo a, EVP_PKEY* p) {
  if (!p) return false;
  if (a != Algo::kEc) return true;
  size_t len = 0;
  ERR_set_mark();
  const bool yes = EVP_PKEY_get_octet_string_param(p, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr,
                                                   0, &len) == 1 &&
                   len > 0;
  ERR_pop_to_mark();
  return yes;
}

// A new EVP_PKEY in the keystore's library context with the `sel` parts (EVP_PKEY_KEYPAIR,
// EVP_PKEY_PUBLIC_KEY or EVP_PKEY_KEY_PARAMETERS) of `from`, sharing nothing with it.
SharedPkey copy_parts(Algo a, EVP_PKEY* from, int sel) {
  OSSL_PARAM* raw = nullptr;
  if (EVP_PKEY_todata(from, sel, &raw) <= 0) return nullptr;
  ExportedParams parts(raw, clear_free);
  ossl::PkeyCtx c(EVP_PKEY_CTX_new_from_name(ossl::libctx(), algo_name(a), nullptr));
  EVP_PKEY* p = nullptr;
  if (!c || EVP_PKEY_fromdata_init(c.get()) <= 0 ||
      EVP_PKEY_fromdata(c.get(), &p, sel, parts.get()) <= 0)
    return nullptr;
  return share(p);
}

template <Algo A>
void* km_new(void*) {
  return guarded<void*>(nullptr, nullptr, [] {
    auto k = std::make_unique<KeyData>();
    k->algo = A;
    return k.release();
  });
}

void km_free(void* keydata) {
  delete static_cast<KeyData*>(keydata);
}

template <Algo A>
void* km_load(const void* reference, size_t size) {
  return guarded<void*>(nullptr, nullptr, [&]() -> void* {
    if (!reference || size != sizeof(KeyReference)) return nullptr;
    const auto* ref = static_cast<const KeyReference*>(reference);
    if (ref->magic != KeyReference::kMagic || !ref->key || ref->key->algo != A) return nullptr;
    CV_DEBUG("keymgmt %s: load %s", algo_name(A), ref->key->name.c_str());
    return new KeyData(*ref->key);
  });
}

// A copy with the parts `selection` names, and no more. EVP_PKEY_copy_parameters() asks for
// the parameters only, and libssl then sets the peer's point on that copy (TLS 1.2 ECDHE),
// so an ordinary key is copied, never shared. A vault key shares its signer only with a
// copy that asked for the private half; any other copy is an ordinary key.
void* km_dup(const void* keydata, int selection) {
  return guarded<void*>(nullptr, nullptr, [&]() -> void* {
    const auto* from = static_cast<const KeyData*>(keydata);
    if (!from) return nullptr;
    if (from->vault() && (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)) return new KeyData(*from);
    auto to = std::make_unique<KeyData>();
    to->algo = from->algo;
    to->name = from->name;
    const bool with_private =
        (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && from->ordinary_private;
    int sel = 0;
    if (with_private)
      sel = EVP_PKEY_KEYPAIR;
    else if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) && !from->params_only)
      sel = EVP_PKEY_PUBLIC_KEY;
    else if ((selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) && from->algo == Algo::kEc)
      sel = EVP_PKEY_KEY_PARAMETERS;
    // Nothing selected that the key holds (RSA and Ed25519 have no parameters): empty.
    if (!sel || !from->pub) return to.release();
    to->pub = copy_parts(from->algo, from->pub.get(), sel);
    if (!to->pub) return nullptr;
    to->ordinary_private = with_private;
    to->params_only = sel == EVP_PKEY_KEY_PARAMETERS;
    return to.release();
  });
}

int km_has(const void* keydata, int selection) {
  const auto* k = static_cast<const KeyData*>(keydata);
  if (!k) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && !k->has_private()) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) && (!k->pub || k->params_only)) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) && k->algo == Algo::kEc && !k->pub) return 0;
  return 1;
}

// provider-keymgmt(7) "validate". An ordinary key is checked by the default provider on the
// key itself. A vault key's public half is checked likewise; its private half is not in
// reach here, and needs no check: the keystore matched it against its certificate.
int km_validate(const void* keydata, int selection, int checktype) {
  return guarded(nullptr, 0, [&] {
    const auto* k = static_cast<const KeyData*>(keydata);
    if (!k || !km_has(keydata, selection)) return 0;
    const bool quick = checktype == OSSL_KEYMGMT_VALIDATE_QUICK_CHECK;
    const bool params = (selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS) && k->algo == Algo::kEc;
    int keys = selection & OSSL_KEYMGMT_SELECT_KEYPAIR;
    if (k->vault() && keys) keys = OSSL_KEYMGMT_SELECT_PUBLIC_KEY;
    if (!params && !keys) return 1;  // RSA and Ed25519 have no parameters to check
    ossl::PkeyCtx c(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), k->pub.get(), nullptr));
    if (!c) return 0;
    EVP_PKEY_CTX* ctx = c.get();
    if (params && (quick ? EVP_PKEY_param_check_quick(ctx) : EVP_PKEY_param_check(ctx)) != 1)
      return 0;
    if (keys == OSSL_KEYMGMT_SELECT_KEYPAIR) return EVP_PKEY_pairwise_check(ctx) == 1 ? 1 : 0;
    if (keys == OSSL_KEYMGMT_SELECT_PUBLIC_KEY)
      return (quick ? EVP_PKEY_public_check_quick(ctx) : EVP_PKEY_public_check(ctx)) == 1 ? 1 : 0;
    if (keys == OSSL_KEYMGMT_SELECT_PRIVATE_KEY) return EVP_PKEY_private_check(ctx) == 1 ? 1 : 0;
    return 1;
  });
}

int km_match(const void* a, const void* b, int selection) {
  const auto* x = static_cast<const KeyData*>(a);
  const auto* y = static_cast<const KeyData*>(b);
  if (!x || !y || !x->pub || !y->pub || x->algo != y->algo) return 0;
  ERR_set_mark();
  int ok = (selection & OSSL_KEYMGMT_SELECT_KEYPAIR)
               ? EVP_PKEY_eq(x->pub.get(), y->pub.get()) == 1
               : EVP_PKEY_parameters_eq(x->pub.get(), y->pub.get()) == 1 || x->algo != Algo::kEc;
  ERR_pop_to_mark();
  return ok;
}

int km_get_params(void* keydata, OSSL_PARAM params[]) {
  auto* k = static_cast<KeyData*>(keydata);
  if (!k || !k->pub) return 0;
  // Asked of the public key only: a vault key's private parts are not in it.
  return EVP_PKEY_get_params(k->pub.get(), params);
}

template <Algo A>
const OSSL_PARAM* km_gettable_params(void*) {
  static const OSSL_PARAM kRsa[] = {
      OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
      OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
      OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kEc[] = {
      OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_FIELD_TYPE, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kEd[] = {
      OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
      OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_MANDATORY_DIGEST, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
      OSSL_PARAM_END};
  return A == Algo::kRsa ? kRsa : A == Algo::kEc ? kEc : kEd;
}

// Only an ordinary key may change (libssl sets the peer's point on an ECDHE key).
// This key's EVP_PKEY is its own (see km_dup), so no other copy sees the change.
int km_set_params(void* keydata, const OSSL_PARAM params[]) {
  auto* k = static_cast<KeyData*>(keydata);
  if (!k || !k->pub || k->vault()) return 0;
  if (EVP_PKEY_set_params(k->pub.get(), const_cast<OSSL_PARAM*>(params)) <= 0) return 0;
  k->params_only = !holds_public(k->algo, k->pub.get());
  return 1;
}

const OSSL_PARAM* km_settable_params(void*) {
  static const OSSL_PARAM kParams[] = {
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0), OSSL_PARAM_END};
  return kParams;
}

template <Algo A>
const OSSL_PARAM* km_key_types(int selection) {
  static const OSSL_PARAM kRsaPub[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                       OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                       OSSL_PARAM_END};
  static const OSSL_PARAM kRsaAll[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                       OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                       OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_D, nullptr, 0),
                                       OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR1, nullptr, 0),
                                       OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_FACTOR2, nullptr, 0),
                                       OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT1, nullptr, 0),
                                       OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_EXPONENT2, nullptr, 0),
                                       OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_COEFFICIENT1, nullptr, 0),
                                       OSSL_PARAM_END};
  static const OSSL_PARAM kEcPub[] = {
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0), OSSL_PARAM_END};
  static const OSSL_PARAM kEcAll[] = {
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0),
      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
      OSSL_PARAM_BN(OSSL_PKEY_PARAM_PRIV_KEY, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kEdPub[] = {OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
                                      OSSL_PARAM_END};
  static const OSSL_PARAM kEdAll[] = {OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
                                      OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PRIV_KEY, nullptr, 0),
                                      OSSL_PARAM_END};
  const bool all = selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY;
  if (A == Algo::kRsa) return all ? kRsaAll : kRsaPub;
  if (A == Algo::kEc) return all ? kEcAll : kEcPub;
  return all ? kEdAll : kEdPub;
}

template <Algo A>
int km_import(void* keydata, int selection, const OSSL_PARAM params[]) {
  return guarded(nullptr, 0, [&] {
    auto* k = static_cast<KeyData*>(keydata);
    if (!k || k->vault()) return 0;
    const bool with_private =
        (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && has_private_param(A, params);
    const int sel = with_private ? EVP_PKEY_KEYPAIR
                                 : evp_selection(selection & ~OSSL_KEYMGMT_SELECT_PRIVATE_KEY);
    ossl::PkeyCtx c(EVP_PKEY_CTX_new_from_name(ossl::libctx(), algo_name(A), nullptr));
    EVP_PKEY* p = nullptr;
    if (!c || EVP_PKEY_fromdata_init(c.get()) <= 0 ||
        EVP_PKEY_fromdata(c.get(), &p, sel, const_cast<OSSL_PARAM*>(params)) <= 0)
      return 0;
    k->pub = share(p);
    k->ordinary_private = with_private;
    k->params_only = !holds_public(A, p);
    return 1;
  });
}

int km_export(void* keydata, int selection, OSSL_CALLBACK* cb, void* cbarg) {
  return guarded(nullptr, 0, [&] {
    auto* k = static_cast<KeyData*>(keydata);
    if (!k || !k->pub) return 0;
    // A vault key's private half never leaves the keystore; callers that asked for the
    // whole key (to use it in another provider) are told no and use this provider.
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && k->vault()) {
      CV_DEBUG("keymgmt: refused to export the private half of %s", k->name.c_str());
      return 0;
    }
    const int sel = (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && k->ordinary_private
                        ? EVP_PKEY_KEYPAIR
                        : evp_selection(selection & ~OSSL_KEYMGMT_SELECT_PRIVATE_KEY);
    OSSL_PARAM* raw = nullptr;
    if (EVP_PKEY_todata(k->pub.get(), sel, &raw) <= 0) return 0;
    ExportedParams out(raw, clear_free);
    return cb(out.get(), cbarg);
  });
}

template <Algo A>
const char* km_operation_name(int operation_id) {
  if (operation_id == OSSL_OP_SIGNATURE) return A == Algo::kEc ? "ECDSA" : algo_name(A);
  // Key agreement is the default provider's (an ephemeral key made here is exported to it).
  if (operation_id == OSSL_OP_KEYEXCH && A == Algo::kEc) return "ECDH";
  return nullptr;
}

// --- generation, for callers that make ordinary keys through this KEYMGMT ---------------

template <Algo A>
void* km_gen_init(void*, int selection, const OSSL_PARAM params[]) {
  return guarded<void*>(nullptr, nullptr, [&]() -> void* {
    auto g = std::make_unique<GenCtx>();
    g->algo = A;
    g->selection = selection;
    g->inner.reset(EVP_PKEY_CTX_new_from_name(ossl::libctx(), algo_name(A), nullptr));
    if (!g->inner) return nullptr;
    const bool keys = selection & OSSL_KEYMGMT_SELECT_KEYPAIR;
    if ((keys ? EVP_PKEY_keygen_init(g->inner.get()) : EVP_PKEY_paramgen_init(g->inner.get())) <= 0)
      return nullptr;
    if (params && EVP_PKEY_CTX_set_params(g->inner.get(), params) <= 0) return nullptr;
    return g.release();
  });
}

int km_gen_set_params(void* genctx, const OSSL_PARAM params[]) {
  auto* g = static_cast<GenCtx*>(genctx);
  if (!g || !params) return g != nullptr;
  return EVP_PKEY_CTX_set_params(g->inner.get(), params) > 0;
}

template <Algo A>
const OSSL_PARAM* km_gen_settable_params(void*, void*) {
  static const OSSL_PARAM kRsa[] = {OSSL_PARAM_size_t(OSSL_PKEY_PARAM_RSA_BITS, nullptr),
                                    OSSL_PARAM_size_t(OSSL_PKEY_PARAM_RSA_PRIMES, nullptr),
                                    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
                                    OSSL_PARAM_END};
  static const OSSL_PARAM kEc[] = {
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_ENCODING, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, nullptr, 0),
      OSSL_PARAM_END};
  static const OSSL_PARAM kEd[] = {OSSL_PARAM_END};
  return A == Algo::kRsa ? kRsa : A == Algo::kEc ? kEc : kEd;
}

int km_gen_set_template(void* genctx, void* templ) {
  return guarded(nullptr, 0, [&] {
    auto* g = static_cast<GenCtx*>(genctx);
    auto* t = static_cast<KeyData*>(templ);
    if (!g || !t || !t->pub) return 0;
    ossl::PkeyCtx c(EVP_PKEY_CTX_new_from_pkey(ossl::libctx(), t->pub.get(), nullptr));
    if (!c || EVP_PKEY_keygen_init(c.get()) <= 0) return 0;
    g->inner = std::move(c);
    return 1;
  });
}

void* km_gen(void* genctx, OSSL_CALLBACK*, void*) {
  return guarded<void*>(nullptr, nullptr, [&]() -> void* {
    auto* g = static_cast<GenCtx*>(genctx);
    if (!g) return nullptr;
    EVP_PKEY* p = nullptr;
    if (EVP_PKEY_generate(g->inner.get(), &p) <= 0) return nullptr;
    auto k = std::make_unique<KeyData>();
    k->algo = g->algo;
    k->pub = share(p);
    k->ordinary_private = g->selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY;
    k->params_only = !holds_public(g->algo, p);
    return k.release();
  });
}

void km_gen_cleanup(void* genctx) {
  delete static_cast<GenCtx*>(genctx);
}

template <Algo A>
const OSSL_DISPATCH kFunctions[] = {
    FN(OSSL_FUNC_KEYMGMT_NEW, km_new<A>),
    FN(OSSL_FUNC_KEYMGMT_FREE, km_free),
    FN(OSSL_FUNC_KEYMGMT_LOAD, km_load<A>),
    FN(OSSL_FUNC_KEYMGMT_DUP, km_dup),
    FN(OSSL_FUNC_KEYMGMT_HAS, km_has),
    FN(OSSL_FUNC_KEYMGMT_MATCH, km_match),
    FN(OSSL_FUNC_KEYMGMT_VALIDATE, km_validate),
    FN(OSSL_FUNC_KEYMGMT_GET_PARAMS, km_get_params),
    FN(OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, km_gettable_params<A>),
    FN(OSSL_FUNC_KEYMGMT_SET_PARAMS, km_set_params),
    FN(OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, km_settable_params),
    FN(OSSL_FUNC_KEYMGMT_IMPORT, km_import<A>),
    FN(OSSL_FUNC_KEYMGMT_IMPORT_TYPES, km_key_types<A>),
    FN(OSSL_FUNC_KEYMGMT_EXPORT, km_export),
    FN(OSSL_FUNC_KEYMGMT_EXPORT_TYPES, km_key_types<A>),
    FN(OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, km_operation_name<A>),
    FN(OSSL_FUNC_KEYMGMT_GEN_INIT, km_gen_init<A>),
    FN(OSSL_FUNC_KEYMGMT_GEN_SET_PARAMS, km_gen_set_params),
    FN(OSSL_FUNC_KEYMGMT_GEN_SETTABLE_PARAMS, km_gen_settable_params<A>),
    FN(OSSL_FUNC_KEYMGMT_GEN_SET_TEMPLATE, km_gen_set_template),
    FN(OSSL_FUNC_KEYMGMT_GEN, km_gen),
    FN(OSSL_FUNC_KEYMGMT_GEN_CLEANUP, km_gen_cleanup),
    {0, nullptr}};

}  // namespace

// The default provider's names, so a vault key is "RSA", "EC" or "ED25519" to libssl.
const OSSL_ALGORITHM kKeymgmtAlgorithms[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", CV_PROPS, kFunctions<Algo::kRsa>,
     "certvault RSA keys"},
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", CV_PROPS, kFunctions<Algo::kEc>, "certvault EC keys"},
    {"ED25519:1.3.101.112", CV_PROPS, kFunctions<Algo::kEd25519>, "certvault Ed25519 keys"},
    {nullptr, nullptr, nullptr, nullptr}};

}  // namespace certvault::provider

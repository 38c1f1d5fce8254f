// STORE for the `certvault` scheme (provider-storemgmt(7)). A load yields, one object per
// call, the certificate of each entry the URI names, its CA chain, and its private key;
// OSSL_STORE_expect() narrows that (a certificate or a public key needs no PIN), and a
// search by alias names the entry.
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include <deque>
#include <memory>
#include <string>

#include "errors.h"
#include "objects.h"
#include "provider.h"
#include "uri.h"
#include "vaults.h"

namespace certvault::provider {
namespace {

enum class Item { kCertificate, kChain, kPublicKey, kPrivateKey };

struct StoreCtx {
  ProvCtx* prov = nullptr;
  VaultUri uri;
  int expect = 0;  // OSSL_STORE_INFO_*; 0: everything
  std::optional<std::string> alias;
  bool planned = false;
  bool failed = false;
  // Entries still to visit, and the objects of the current one.
  std::deque<std::string> nicknames;
  std::optional<Resolved> current;
  std::deque<std::pair<Item, size_t>> items;  // size_t: index into the chain
  // A listing (everything of every entry) goes on past a private key it cannot load; after
  // a PIN failure it asks no more, so a wrong PIN is tried and counted once.
  bool listing = false;
  bool pin_failed = false;
};

bool is_pin_failure(Code code) {
  return code == Code::kLocked || code == Code::kWrongPin || code == Code::kPinLocked;
}

void* store_open(void* provctx, const char* uri) {
  auto* prov = static_cast<ProvCtx*>(provctx);
  return guarded<void*>(prov, nullptr, [&]() -> void* {
    auto parsed = parse_uri(uri ? uri : "");
    if (!parsed) {
      CV_RAISE(prov, parsed.error());
      return nullptr;
    }
    auto c = std::make_unique<StoreCtx>();
    c->prov = prov;
    c->uri = std::move(*parsed);
    CV_DEBUG("store: open %s", c->uri.display().c_str());
    return c.release();
  });
}

const OSSL_PARAM* store_settable_ctx_params(void*) {
  static const OSSL_PARAM kParams[] = {
      OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, nullptr),
      OSSL_PARAM_utf8_string(OSSL_STORE_PARAM_ALIAS, nullptr, 0),
      OSSL_PARAM_utf8_string(OSSL_STORE_PARAM_PROPERTIES, nullptr, 0), OSSL_PARAM_END};
  return kParams;
}

int store_set_ctx_params(void* loaderctx, const OSSL_PARAM params[]) {
  auto* c = static_cast<StoreCtx*>(loaderctx);
  return guarded(c->prov, 0, [&] {
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT)) {
      if (!OSSL_PARAM_get_int(p, &c->expect)) return 0;
    }
    if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_ALIAS)) {
      const char* alias = nullptr;
      if (!OSSL_PARAM_get_utf8_string_ptr(p, &alias)) return 0;
      c->alias = alias ? alias : "";
    }
    return 1;
  });
}

// Which nicknames a load visits: the URI's, or the alias searched for, or every entry.
bool plan(StoreCtx* c) {
  c->planned = true;
  if (c->alias) {
    if (c->uri.nickname.empty() || c->uri.nickname == *c->alias) c->nicknames.push_back(*c->alias);
    return true;
  }
  if (!c->uri.nickname.empty()) {
    c->nicknames.push_back(c->uri.nickname);
    return true;
  }
  c->listing = c->expect == 0;
  auto all = c->prov->vaults->nicknames(c->uri);
  if (!all) {
    CV_RAISE(c->prov, all.error());
    return false;
  }
  c->nicknames.assign(all->begin(), all->end());
  return true;
}

// Resolves the next entry and queues what the caller expects of it.
bool next_entry(StoreCtx* c) {
  const std::string nickname = c->nicknames.front();
  c->nicknames.pop_front();
  auto r = c->prov->vaults->resolve(c->uri, nickname);
  if (!r) {
    CV_RAISE(c->prov, Error{r.error().code, r.error().message});
    return false;
  }
  c->current = std::move(*r);
  c->items.clear();
  const int e = c->expect;
  if (e == 0 || e == OSSL_STORE_INFO_CERT) {
    c->items.emplace_back(Item::kCertificate, 0);
    for (size_t i = 0; i < c->current->chain.size(); ++i) c->items.emplace_back(Item::kChain, i);
  }
  if (e == OSSL_STORE_INFO_PUBKEY) c->items.emplace_back(Item::kPublicKey, 0);
  if ((e == 0 && !c->pin_failed) || e == OSSL_STORE_INFO_PKEY)
    c->items.emplace_back(Item::kPrivateKey, 0);
  return true;
}

int store_load(void* loaderctx, OSSL_CALLBACK* object_cb, void* object_cbarg,
               OSSL_PASSPHRASE_CALLBACK* pw_cb, void* pw_cbarg) {
  auto* c = static_cast<StoreCtx*>(loaderctx);
  return guarded(c->prov, 0, [&] {
    if (c->failed) return 0;
    if (!c->planned && !plan(c)) {
      c->failed = true;
      return 0;
    }
    while (c->items.empty()) {
      if (c->nicknames.empty()) return 0;  // eof
      if (!next_entry(c)) {
        c->failed = true;
        return 0;
      }
    }
    auto [item, index] = c->items.front();
    c->items.pop_front();
    const Resolved& r = *c->current;
    const std::string name = certvault_uri(r.nickname);
    switch (item) {
      case Item::kCertificate:
        return emit_certificate(r.cert, name + " certificate", object_cb, object_cbarg);
      case Item::kChain:
        return emit_certificate(r.chain[index], name + " CA certificate", object_cb, object_cbarg);
      case Item::kPublicKey:
      case Item::kPrivateKey: {
        const bool with_private = item == Item::kPrivateKey;
        auto key =
            make_key(*c->prov->vaults, r, c->uri, PinCallback{pw_cb, pw_cbarg}, with_private);
        if (!key) {
          CV_RAISE(c->prov, key.error());
          // In a listing this entry's key is reported and skipped: the next load goes on
          // with the next entry, as storeutl and other OSSL_STORE_eof() loops expect.
          if (c->listing) {
            c->pin_failed = c->pin_failed || is_pin_failure(key.error().code);
          } else {
            c->failed = true;
          }
          return 0;
        }
        CV_DEBUG("store: %s key of %s", with_private ? "private" : "public", name.c_str());
        return with_private ? emit_key_reference(**key, object_cb, object_cbarg)
                            : emit_public_key(**key, r.spki, object_cb, object_cbarg);
      }
    }
    return 0;
  });
}

int store_eof(void* loaderctx) {
  auto* c = static_cast<StoreCtx*>(loaderctx);
  return c->failed || (c->planned && c->items.empty() && c->nicknames.empty());
}

int store_close(void* loaderctx) {
  delete static_cast<StoreCtx*>(loaderctx);
  return 1;
}

const OSSL_DISPATCH kStoreFunctions[] = {
    FN(OSSL_FUNC_STORE_OPEN, store_open),
    FN(OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, store_settable_ctx_params),
    FN(OSSL_FUNC_STORE_SET_CTX_PARAMS, store_set_ctx_params),
    FN(OSSL_FUNC_STORE_LOAD, store_load),
    FN(OSSL_FUNC_STORE_EOF, store_eof),
    FN(OSSL_FUNC_STORE_CLOSE, store_close),
    {0, nullptr}};

}  // namespace

const OSSL_ALGORITHM kStoreAlgorithms[] = {
    {"certvault", CV_PROPS, kStoreFunctions, "certvault: URIs of vault entries"},
    {nullptr, nullptr, nullptr, nullptr}};

}  // namespace certvault::provider

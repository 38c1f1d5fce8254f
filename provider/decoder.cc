// DECODER for URI-in-PEM files (provider-decoder(7)): a PEM -> DER step that recognises
// the "CERTVAULT URI" block and hands its content on, and one key decoder per key type
// that loads the vault key the URI names, as the STORE does. With the provider loaded,
// PEM_read_bio_PrivateKey() and SSL_CTX_use_PrivateKey_file() on such a file get the
// vault key.
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

#include "errors.h"
#include "objects.h"
#include "ossl.h"
#include "provider.h"
#include "uri.h"
#include "uri_pem.h"

namespace certvault::provider {
namespace {

constexpr size_t kMaxInput = 16 * 1024;  // a URI file is a few hundred bytes

struct DecoderCtx {
  ProvCtx* prov = nullptr;
};

// Reads at most kMaxInput bytes; a longer input is not a URI file.
bool read_all(const ProvCtx* prov, OSSL_CORE_BIO* in, std::string& out) {
  char buf[1024];
  while (out.size() <= kMaxInput) {
    size_t got = 0;
    if (!prov->core.bio_read_ex(in, buf, sizeof buf, &got) || got == 0) break;
    out.append(buf, got);
  }
  return out.size() <= kMaxInput;
}

void* dec_new(void* provctx) {
  try {
    return new DecoderCtx{static_cast<ProvCtx*>(provctx)};
  } catch (...) {
    return nullptr;
  }
}

void dec_free(void* ctx) {
  delete static_cast<DecoderCtx*>(ctx);
}

int dec_does_selection(void*, int) {
  return 1;
}

// PEM -> certvault URI. Anything else is left to the other decoders (return 1, nothing
// passed on).
int pem_decode(void* ctx, OSSL_CORE_BIO* in, int, OSSL_CALLBACK* data_cb, void* data_cbarg,
               OSSL_PASSPHRASE_CALLBACK*, void*) {
  auto* c = static_cast<DecoderCtx*>(ctx);
  try {
    std::string text;
    const std::string begin = "-----BEGIN " + std::string(kUriPemLabel) + "-----";
    if (!read_all(c->prov, in, text) || text.find(begin) == std::string::npos) return 1;
    ossl::Bio bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    ERR_set_mark();
    int ok = bio && PEM_read_bio(bio.get(), &name, &header, &data, &len) > 0;
    ERR_pop_to_mark();
    int result = 1;
    if (ok && name && kUriPemLabel == name && len > 0) {
      OSSL_PARAM params[] = {
          OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, data, static_cast<size_t>(len)),
          OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE,
                                           const_cast<char*>(kUriStructure), 0),
          OSSL_PARAM_construct_end()};
      result = data_cb(params, data_cbarg);
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    return result;
  } catch (...) {
    CV_RAISE(c->prov, kInternal, "unexpected failure reading a certvault URI file");
    return 0;
  }
}

// certvault URI -> key of type A.
template <Algo A>
int key_decode(void* ctx, OSSL_CORE_BIO* in, int selection, OSSL_CALLBACK* data_cb,
               void* data_cbarg, OSSL_PASSPHRASE_CALLBACK* pw_cb, void* pw_cbarg) {
  auto* c = static_cast<DecoderCtx*>(ctx);
  try {
    std::string text;
    if (!read_all(c->prov, in, text)) return 1;
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == '\0'))
      text.pop_back();
    auto uri = parse_uri(text);
    if (!uri) {
      CV_RAISE(c->prov, uri.error());
      return 0;
    }
    if (uri->nickname.empty()) {
      CV_RAISE(c->prov, kBadUri, "the certvault URI in a key file must name an entry");
      return 0;
    }
    auto r = c->prov->vaults->resolve(*uri, uri->nickname);
    if (!r) {
      CV_RAISE(c->prov, r.error());
      return 0;
    }
    if (algo_of(r->key_type) != A) return 1;  // another key decoder's type
    const bool with_private = selection == 0 || (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY);
    auto key = make_key(*c->prov->vaults, *r, *uri, PinCallback{pw_cb, pw_cbarg}, with_private);
    if (!key) {
      CV_RAISE(c->prov, key.error());
      return 0;
    }
    CV_DEBUG("decoder: %s key of %s", with_private ? "private" : "public", (*key)->name.c_str());
    return emit_key_reference(**key, data_cb, data_cbarg);
  } catch (...) {
    CV_RAISE(c->prov, kInternal, "unexpected failure loading the key of a certvault URI file");
    return 0;
  }
}

// Keys are only ever built by this provider's KEYMGMT from the reference.
int dec_export_object(void*, const void*, size_t, OSSL_CALLBACK*, void*) {
  return 0;
}

#define FN(id, f) \
  { id, reinterpret_cast<void (*)(void)>(f) }

const OSSL_DISPATCH kPemFunctions[] = {FN(OSSL_FUNC_DECODER_NEWCTX, dec_new),
                                       FN(OSSL_FUNC_DECODER_FREECTX, dec_free),
                                       FN(OSSL_FUNC_DECODER_DOES_SELECTION, dec_does_selection),
                                       FN(OSSL_FUNC_DECODER_DECODE, pem_decode),
                                       {0, nullptr}};

template <Algo A>
const OSSL_DISPATCH kKeyFunctions[] = {FN(OSSL_FUNC_DECODER_NEWCTX, dec_new),
                                       FN(OSSL_FUNC_DECODER_FREECTX, dec_free),
                                       FN(OSSL_FUNC_DECODER_DOES_SELECTION, dec_does_selection),
                                       FN(OSSL_FUNC_DECODER_DECODE, key_decode<A>),
                                       FN(OSSL_FUNC_DECODER_EXPORT_OBJECT, dec_export_object),
                                       {0, nullptr}};

#define KEY_PROPS CV_PROPS ",input=der,structure=certvault-uri"

}  // namespace

const OSSL_ALGORITHM kDecoderAlgorithms[] = {
    {"DER", CV_PROPS ",input=pem", kPemFunctions, "certvault URI-in-PEM files"},
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", KEY_PROPS, kKeyFunctions<Algo::kRsa>,
     "certvault RSA keys by URI"},
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", KEY_PROPS, kKeyFunctions<Algo::kEc>,
     "certvault EC keys by URI"},
    {"ED25519:1.3.101.112", KEY_PROPS, kKeyFunctions<Algo::kEd25519>,
     "certvault Ed25519 keys by URI"},
    {nullptr, nullptr, nullptr, nullptr}};

}  // namespace certvault::provider

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

#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

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

// What a decoder read, wiped when it is done with: the URI in a file is no secret, but a
// hand-written one might still carry a pin-value (which key_decode refuses).
struct Input {
  std::vector<char> bytes = std::vector<char>(kMaxInput + 1);
  size_t used = 0;
  Input() = default;
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  ~Input() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
  std::string_view view() const { return {bytes.data(), used}; }
};

// Reads at most kMaxInput bytes; a longer input is not a URI file.
bool read_all(const ProvCtx* prov, OSSL_CORE_BIO* in, Input& out) {
  while (out.used < out.bytes.size()) {
    size_t got = 0;
    if (!prov->core.bio_read_ex(in, out.bytes.data() + out.used, out.bytes.size() - out.used,
                                &got) ||
        got == 0)
      break;
    out.used += got;
  }
  return out.used <= kMaxInput;
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
    Input input;
    const std::string begin = "-----BEGIN " + std::string(kUriPemLabel) + "-----";
    if (!read_all(c->prov, in, input) || input.view().find(begin) == std::string_view::npos)
      return 1;
    ossl::Bio bio(BIO_new_mem_buf(input.bytes.data(), static_cast<int>(input.used)));
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    ERR_set_mark();
    // PEM_read_bio's own flags, plus buffers that are wiped when freed.
    int ok = bio && PEM_read_bio_ex(bio.get(), &name, &header, &data, &len,
                                    PEM_FLAG_EAY_COMPATIBLE | PEM_FLAG_SECURE) > 0;
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
    if (name) OPENSSL_secure_clear_free(name, std::strlen(name));
    if (header) OPENSSL_secure_clear_free(header, std::strlen(header));
    if (data) OPENSSL_secure_clear_free(data, static_cast<size_t>(len));
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
    Input input;
    if (!read_all(c->prov, in, input)) return 1;
    std::string_view text = input.view();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == '\0'))
      text.remove_suffix(1);
    auto uri = parse_uri(text);
    if (!uri) {
      CV_RAISE(c->prov, uri.error());
      return 0;
    }
    if (uri->pin_value) {
      CV_RAISE(c->prov, kBadUri,
               "a certvault URI file must hold no secret, and this one has pin-value=; write "
               "the PIN into a file of mode 0600, name it with pin-source=file:PATH, and "
               "write the URI file again (certvault uri NICKNAME --pem)");
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

// ENCODER for the public half of this provider's keys, as SubjectPublicKeyInfo in DER and
// PEM (provider-encoder(7)): what `openssl pkey -pubout`, X509_REQ_set_pubkey() and
// X509_set_pubkey() need. A vault key's private half is never encoded.
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "errors.h"
#include "key.h"
#include "ossl.h"
#include "provider.h"

namespace certvault::provider {
namespace {

void* enc_new(void* provctx) {
  return provctx;
}

void enc_free(void*) {}

int enc_does_selection(void*, int selection) {
  return (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) &&
         !(selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY);
}

template <bool Pem>
int enc_encode(void* ctx, OSSL_CORE_BIO* out, const void* obj_raw, const OSSL_PARAM obj_abstract[],
               int selection, OSSL_PASSPHRASE_CALLBACK*, void*) {
  auto* prov = static_cast<const ProvCtx*>(ctx);
  try {
    const auto* k = static_cast<const KeyData*>(obj_raw);
    if (obj_abstract || !k || !k->pub) return 0;
    if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) {
      CV_RAISE(prov, kNotSupported, "the private key of " + k->name + " never leaves the vault");
      return 0;
    }
    ossl::Bio mem(BIO_new(BIO_s_mem()));
    if (!mem || (Pem ? PEM_write_bio_PUBKEY(mem.get(), k->pub.get())
                     : i2d_PUBKEY_bio(mem.get(), k->pub.get())) <= 0) {
      CV_RAISE(prov, kKeyOperation, "encoding a public key: " + ossl::last_error());
      return 0;
    }
    char* data = nullptr;
    long len = BIO_get_mem_data(mem.get(), &data);
    size_t done = 0;
    while (done < static_cast<size_t>(len)) {
      size_t written = 0;
      if (!prov->core.bio_write_ex(out, data + done, static_cast<size_t>(len) - done, &written) ||
          written == 0)
        return 0;
      done += written;
    }
    return 1;
  } catch (...) {
    CV_RAISE(prov, kInternal, "unexpected failure encoding a public key");
    return 0;
  }
}

template <bool Pem>
const OSSL_DISPATCH kFunctions[] = {FN(OSSL_FUNC_ENCODER_NEWCTX, enc_new),
                                    FN(OSSL_FUNC_ENCODER_FREECTX, enc_free),
                                    FN(OSSL_FUNC_ENCODER_DOES_SELECTION, enc_does_selection),
                                    FN(OSSL_FUNC_ENCODER_ENCODE, enc_encode<Pem>),
                                    {0, nullptr}};

#define DER_PROPS CV_PROPS ",output=der,structure=SubjectPublicKeyInfo"
#define PEM_PROPS CV_PROPS ",output=pem,structure=SubjectPublicKeyInfo"

}  // namespace

const OSSL_ALGORITHM kEncoderAlgorithms[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", DER_PROPS, kFunctions<false>, nullptr},
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", PEM_PROPS, kFunctions<true>, nullptr},
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", DER_PROPS, kFunctions<false>, nullptr},
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", PEM_PROPS, kFunctions<true>, nullptr},
    {"ED25519:1.3.101.112", DER_PROPS, kFunctions<false>, nullptr},
    {"ED25519:1.3.101.112", PEM_PROPS, kFunctions<true>, nullptr},
    {nullptr, nullptr, nullptr, nullptr}};

}  // namespace certvault::provider

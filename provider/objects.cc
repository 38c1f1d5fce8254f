#include "objects.h"

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/params.h>

#include "errors.h"
#include "ossl.h"

namespace certvault::provider {

Result<std::unique_ptr<KeyData>> make_key(Vaults& vaults, const Resolved& r, const VaultUri& uri,
                                          const PinCallback& pin, bool with_private) {
  auto key = std::make_unique<KeyData>();
  key->algo = algo_of(r.key_type);
  key->name = certvault_uri(r.nickname);
  CV_TRY(pub, ossl::public_from_spki(r.spki));
  key->pub = share(pub.release());
  if (!with_private) return key;
  if (r.remote) {
    // The agent holds the key: no PIN here, and a locked vault says so at once.
    // Refused, not "no PIN": the program has nothing to give; the operator unlocks.
    if (r.locked) return fail(Code::kRefused, *r.locked);
    key->signer = r.remote;
  } else {
    CV_TRY(signer, vaults.signing_key(r, uri, pin));
    key->signer = std::move(signer);
  }
  key->prototypes = std::make_shared<SignPrototypes>();
  return key;
}

int emit_certificate(const std::vector<uint8_t>& der, const std::string& desc, OSSL_CALLBACK* cb,
                     void* cbarg) {
  int type = OSSL_OBJECT_CERT;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type),
      OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE, const_cast<char*>("X509"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, const_cast<uint8_t*>(der.data()),
                                        der.size()),
      OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DESC, const_cast<char*>(desc.c_str()), 0),
      OSSL_PARAM_construct_end()};
  return cb(params, cbarg);
}

int emit_public_key(const KeyData& key, const std::vector<uint8_t>& spki, OSSL_CALLBACK* cb,
                    void* cbarg) {
  int type = OSSL_OBJECT_PKEY;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type),
      OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                       const_cast<char*>(algo_name(key.algo)), 0),
      OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_STRUCTURE,
                                       const_cast<char*>("SubjectPublicKeyInfo"), 0),
      OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_DATA, const_cast<uint8_t*>(spki.data()),
                                        spki.size()),
      OSSL_PARAM_construct_end()};
  return cb(params, cbarg);
}

int emit_key_reference(const KeyData& key, OSSL_CALLBACK* cb, void* cbarg) {
  int type = OSSL_OBJECT_PKEY;
  KeyReference ref;
  ref.key = &key;
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type),
      OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                       const_cast<char*>(algo_name(key.algo)), 0),
      OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &ref, sizeof ref),
      OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DESC, const_cast<char*>(key.name.c_str()),
                                       0),
      OSSL_PARAM_construct_end()};
  return cb(params, cbarg);
}

}  // namespace certvault::provider

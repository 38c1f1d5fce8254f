// What the STORE and the DECODER hand to OpenSSL: certificates as DER, public keys as
// SubjectPublicKeyInfo, and vault keys as references to a KeyData (provider-object(7)).
#pragma once

#include <openssl/core.h>

#include <memory>
#include <vector>

#include "key.h"
#include "vaults.h"

namespace certvault::provider {

// The key of a resolved generation: its public half always, the vault key when
// `with_private` (which may ask for the PIN).
Result<std::unique_ptr<KeyData>> make_key(Vaults& vaults, const Resolved& r, const VaultUri& uri,
                                          const PinCallback& pin, bool with_private);

// One object to the caller's callback; returns the callback's answer.
int emit_certificate(const std::vector<uint8_t>& der, const std::string& desc, OSSL_CALLBACK* cb,
                     void* cbarg);
int emit_public_key(const KeyData& key, const std::vector<uint8_t>& spki, OSSL_CALLBACK* cb,
                    void* cbarg);
// `key` must outlive the callback (the caller's KEYMGMT copies it in its load).
int emit_key_reference(const KeyData& key, OSSL_CALLBACK* cb, void* cbarg);

}  // namespace certvault::provider

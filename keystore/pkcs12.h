// PKCS#12 export and import.
#pragma once

#include <span>
#include <string_view>

#include "ossl.h"
#include "secure.h"
#include "types.h"

namespace certvault::pkcs12 {

// A strong generated password, NUL-terminated inside the buffer (size() excludes it).
SecureBytes new_password();

Result<ossl::Bytes> build(EVP_PKEY* key, X509* cert, STACK_OF(X509) * chain,
                          const SecureBytes& password, P12Encryption encryption,
                          std::string_view friendly_name);

struct Contents {
  ossl::Pkey key;
  ossl::Cert cert;
  ossl::CertStack chain;
};
// `source` names the input in error sentences.
Result<Contents> parse(std::span<const uint8_t> der, const SecureBytes& password,
                       std::string_view source);

}  // namespace certvault::pkcs12

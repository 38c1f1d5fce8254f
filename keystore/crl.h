// X.509 certificate revocation lists (RFC 5280 section 5): the list the vault CA signs for
// servers that check one.
#pragma once

#include <string>
#include <vector>

#include "ossl.h"
#include "types.h"

namespace certvault::crl {

struct Listed {
  const X509* cert = nullptr;  // the revoked certificate (its serial is listed)
  RevocationReason reason = RevocationReason::kUnspecified;
  Time at = 0;
};

struct CrlArgs {
  X509* issuer = nullptr;  // the CA certificate: issuer name and authority key identifier
  EVP_PKEY* signer = nullptr;
  Hash hash = Hash::kSha256;  // ignored for Ed25519 signers
  uint64_t number = 0;        // cRLNumber
  Time this_update = 0;
  Time next_update = 0;
  std::vector<Listed> revoked;
};

// A v2 CRL signed by `signer`, as PEM.
Result<std::string> make(const CrlArgs& args);

}  // namespace certvault::crl

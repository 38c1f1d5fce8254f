// The ACME client (RFC 8555): enrolls a new entry at an outside issuer with an order for
// the entry's DNS names and IP addresses (RFC 8738), answering http-01 challenges with a
// small responder of its own while the order is pending or dns-01 challenges through the
// issuer's hook (tools/hook.h), and renews one with a fresh order
// for the same identifiers and a new key. HTTP through libcurl, JWS (ES256) with OpenSSL;
// the account key and the new keys come from the unlocked vault, and the answer is stored
// only when the vault accepts it (Vault::finish_enrollment). docs/lifecycle.md, "Outside
// CAs: ACME".
#pragma once

#include <string>
#include <string_view>

#include "error.h"
#include "vault.h"

namespace certvault::cli {

// A new entry in `vault` (unlocked); registers the issuer's account first if need be.
Result<Entry> acme_enroll(Vault& vault, const EnrollmentRequest& request);

// A new key and certificate for an entry enrolled from an ACME issuer: a new order for the
// identifiers of its current certificate, naming the certificate it replaces when the
// directory offers renewal information (RFC 9773 5). The current generation stays until
// the new one is stored.
// With if_current, the CA is not asked unless that generation is still the current one.
Result<Entry> acme_renew(Vault& vault, std::string_view nickname,
                         std::optional<uint32_t> if_current = std::nullopt);

// RFC 8555 7.6 revokeCert: asks the issuer to revoke a certificate the vault's account
// ordered, with its reason; signed with the account key. Records nothing in the vault.
Result<void> acme_revoke(Vault& vault, const IssuerRevocation& revocation);

// An unauthenticated GET from an ACME issuer's server (its TLS anchors): the directory,
// renewal information (RFC 9773 4.1). Fails only when the server was not reached.
struct AcmeGet {
  long status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header; "" none
};
Result<AcmeGet> acme_get(const OutsideIssuer& issuer, const std::string& url);

}  // namespace certvault::cli

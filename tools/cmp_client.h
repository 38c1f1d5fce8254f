// The CMP client (RFC 4210, CMPv2 as OpenSSL 3.0 speaks it, after the Lightweight CMP
// Profile, RFC 9483, where 3.0 can): enrolls a new entry at an outside issuer with an
// initialization request (ir), and renews one with a key update request (kur) signed with
// its current key. OpenSSL's own client and HTTP transfer do the protocol; the keys come
// from the unlocked vault, and the answer is stored only when the vault accepts it
// (Vault::finish_enrollment). docs/lifecycle.md, "Outside CAs: CMP".
#pragma once

#include <string_view>

#include "error.h"
#include "vault.h"

namespace certvault::cli {

// ir: a new entry in `vault` (unlocked), authenticated with the issuer's shared secret
// (password-based MAC) or with the vault certificate the issuer names.
Result<Entry> cmp_enroll(Vault& vault, const EnrollmentRequest& request);

// kur: a new key and certificate for an entry enrolled from an outside issuer, signed with
// its current key and certificate. The current generation stays until the new one is stored.
// With if_current, the CA is not asked unless that generation is still the current one.
Result<Entry> cmp_renew(Vault& vault, std::string_view nickname,
                        std::optional<uint32_t> if_current = std::nullopt);

// rr (RFC 4210 5.3.9): asks the issuer to revoke a certificate of the vault, with its
// reason, signed with that certificate's own key (RFC 9483 4.2). Records nothing.
Result<void> cmp_revoke(const Vault& vault, const IssuerRevocation& revocation);

}  // namespace certvault::cli

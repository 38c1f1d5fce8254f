// Revoking a generation where its certificate was issued (docs/revocation.md): the vault
// CA's in the vault, for its next CRL; an outside issuer's at that issuer, by its protocol
// (ACME revokeCert, CMP rr), and recorded in the vault once the issuer has done it. What
// `certvault revoke`, `renew --revoke-old` and the agent do.
#pragma once

#include <optional>
#include <string_view>

#include "error.h"
#include "vault.h"

namespace certvault::cli {

// `vault` unlocked. The entry as it is after; its newest `revoked` record is this one. A
// failed request to an outside issuer changes nothing in the vault.
Result<Entry> revoke_generation(Vault& vault, std::string_view nickname,
                                std::optional<uint32_t> generation, RevocationReason reason);

// The outside issuer that revokes `generation` of `entry` (and publishes its revocation);
// "" when the vault CA does (its next CRL lists it).
std::string revoking_issuer(const Entry& entry, uint32_t generation);

}  // namespace certvault::cli

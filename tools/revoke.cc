#include "revoke.h"

#include "acme_client.h"
#include "cmp_client.h"

namespace certvault::cli {

Result<Entry> revoke_generation(Vault& vault, std::string_view nickname,
                                std::optional<uint32_t> generation, RevocationReason reason) {
  CV_TRY(at_issuer, vault.revocation_at_issuer(nickname, generation, reason));
  if (!at_issuer) return vault.revoke(nickname, generation, reason);
  const IssuerRevocation& r = *at_issuer;
  auto issuer = vault.find_issuer(r.issuer);
  if (!issuer) return fail(Code::kNotFound, "issuer '" + r.issuer + "' was removed meanwhile");
  CV_CHECK(issuer->protocol == IssuerProtocol::kAcme ? acme_revoke(vault, r)
                                                     : cmp_revoke(vault, r));
  auto recorded = vault.record_issuer_revocation(r);
  if (!recorded)
    return fail(recorded.error().code,
                "issuer '" + r.issuer + "' revoked generation " + std::to_string(r.generation) +
                    " of '" + r.nickname + "', but the vault could not record it: " +
                    recorded.error().message + "; run the revocation again to record it");
  return recorded;
}

std::string revoking_issuer(const Entry& entry, uint32_t generation) {
  const Generation* g = entry.generation(generation);
  return g && revoked_at_issuer(entry.issuer, *g) ? entry.issuer : "";
}

}  // namespace certvault::cli

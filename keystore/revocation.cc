// Revocation of the vault CA's certificates, and the CRL that lists them (RFC 5280 5); and
// the record of a revocation at an outside issuer, which the protocol client asks for
// (tools/revoke.cc) and which no CRL of the vault CA lists.
#include <openssl/x509v3.h>

#include <algorithm>

#include "crl.h"
#include "vault_impl.h"

namespace certvault {
namespace {

using Txn = Vault::Impl::Txn;

// A CRL lets a server trust a list for this long at most, and is made for at least a
// minute: a `--next-update` outside that is a typo.
constexpr Time kMinCrlPeriod = 60;
constexpr Time kMaxCrlPeriod = 366 * 86400;

std::string generation_of(const manifest::EntryRecord& e, uint32_t number) {
  return "generation " + std::to_string(number) + " of '" + e.nickname + "'";
}

// The generation `revoke` takes back: the one asked for, else the current one (or the
// newest, when a revocation took the current one away, to say so).
template <typename EntryRecord>
auto to_revoke(const Vault::Impl& v, EntryRecord& e, std::optional<uint32_t> number)
    -> Result<decltype(&e.gens.front())> {
  for (auto it = e.gens.rbegin(); it != e.gens.rend(); ++it)
    if (number ? it->info.number == *number : it->info.status == Status::kActive) return &*it;
  if (!number)
    for (auto it = e.gens.rbegin(); it != e.gens.rend(); ++it)
      if (it->info.status != Status::kPending) {
        if (revocation_of(e, it->info.number)) return &*it;
        break;
      }
  if (number)
    return fail(
        Code::kNotFound,
        "'" + e.nickname + "' has no generation " + std::to_string(*number) + " in " + v.where(),
        Remedy::kShowGenerations, e.nickname);
  return fail(Code::kRefused, "'" + e.nickname +
                                  "' has no active certificate; name the one to revoke with "
                                  "--generation N (`certvault show '" +
                                  e.nickname + "'` lists them)");
}

// A generation from the entry's outside issuer is revoked there (by protocol); any other
// external one only by its CA, by hand.
bool from_outside_issuer(const manifest::EntryRecord& e, const Generation& g) {
  return revoked_at_issuer(e.attributes().issuer, g);
}

Result<void> check_revocable(const manifest::EntryRecord& e, const Generation& g) {
  const std::string which = generation_of(e, g.number);
  if (g.status == Status::kPending)
    return fail(Code::kRefused, which + " has no certificate yet, so there is nothing to revoke");
  if (g.issuer == IssuerKind::kSelfSigned)
    return fail(Code::kRefused, which +
                                    " is self-signed, so no CRL can list it; remove it from the "
                                    "servers that trust it");
  if (g.issuer == IssuerKind::kExternal && !from_outside_issuer(e, g))
    return fail(Code::kRefused, which + " was issued by another CA (" + g.issuer_name +
                                    "), not the vault CA; ask that CA to revoke it");
  if (const Revocation* r = revocation_of(e, g.number))
    return fail(Code::kRefused, which + " was already revoked on " + format_time(r->at) + " (" +
                                    std::string(to_string(r->reason)) + "); nothing to do");
  return {};
}

// What the active CA's CRL lists: each recorded revocation of a certificate that CA issued
// (same issuer name and key identifier). Certificates of a retired CA are not on it.
struct Listing {
  std::vector<ossl::Cert> certs;  // kept alive while the CRL is built
  std::vector<crl::Listed> listed;
};

Result<Listing> revoked_by(const Vault::Impl& v, const manifest::Manifest& m, X509* ca_cert) {
  Listing out;
  for (const auto& e : m.entries) {
    for (const Revocation& r : e->attributes().revoked) {
      auto g = std::find_if(e->gens.begin(), e->gens.end(),
                            [&](const auto& x) { return x.info.number == r.generation; });
      if (g == e->gens.end() || g->info.issuer != IssuerKind::kVaultCa) continue;
      CV_TRY(o, v.object(*e, *g));
      CV_TRY(cert, ossl::cert_from_der(o.certificate));
      if (X509_check_issued(ca_cert, cert.get()) != X509_V_OK) continue;
      out.listed.push_back({cert.get(), r.reason, r.at});
      out.certs.push_back(std::move(cert));
    }
  }
  return out;
}

Result<void> check_crl_signer(const Vault::Impl& v, const manifest::CaRecord& ca, X509* cert,
                              Time t, Time next_update) {
  if (ca.info.not_after <= t)
    return fail(Code::kRefused, "the CA of " + v.where() + " expired on " +
                                    format_date(ca.info.not_after) +
                                    "; create a new one with `certvault ca create --replace "
                                    "--end-date DATE`");
  // RFC 5280 4.2.1.3: a CA key signs CRLs only when its key usage says cRLSign.
  if ((X509_get_extension_flags(cert) & EXFLAG_KUSAGE) && !(X509_get_key_usage(cert) & KU_CRL_SIGN))
    return fail(Code::kRefused, "the CA certificate of " + v.where() +
                                    " may not sign CRLs (its key usage lacks cRLSign); import "
                                    "a CA certificate that may, or create a new CA with "
                                    "`certvault ca create --replace --end-date DATE`");
  if (next_update < t + kMinCrlPeriod || next_update > t + kMaxCrlPeriod)
    return fail(Code::kInvalidInput, "the CRL's next update " + format_time(next_update) +
                                         " is not between a minute and 366 days from now; "
                                         "give a period such as 7d");
  return {};
}

void record_revocation(manifest::EntryRecord& e, manifest::GenRecord& g, RevocationReason reason) {
  manifest::edit_attributes(e).revoked.push_back({g.info.number, g.info.serial, reason, now()});
  // Stops signing at once, even for a certvault that does not know "revoked".
  if (g.info.status == Status::kActive || g.info.status == Status::kSuperseded)
    g.info.status = Status::kDisabled;
}

}  // namespace

const Revocation* revocation_of(const manifest::EntryRecord& e, uint32_t number) {
  for (const Revocation& r : e.attributes().revoked)
    if (r.generation == number) return &r;
  return nullptr;
}

Result<std::optional<IssuerRevocation>> Vault::revocation_at_issuer(
    std::string_view nickname, std::optional<uint32_t> generation, RevocationReason reason) const {
  const Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("revoke a certificate"));
  CV_CHECK(check_nickname(nickname));
  CV_CHECK(v.refresh());
  const auto* e = v.entry(nickname);
  if (!e) return no_entry_named(nickname, v.where(), v.nicknames());
  CV_TRY(g, to_revoke(v, *e, generation));
  CV_CHECK(check_revocable(*e, g->info));
  if (!from_outside_issuer(*e, g->info)) return std::nullopt;
  const std::string& issuer = e->attributes().issuer;
  if (std::none_of(v.m.header.issuers.begin(), v.m.header.issuers.end(),
                   [&](const auto& i) { return i.info.name == issuer; }))
    return fail(Code::kNotFound, "issuer '" + issuer + "' of '" + e->nickname + "' is not in " +
                                     v.where() + " any more; ask that CA to revoke it");
  CV_TRY(o, v.object(*e, *g));
  IssuerRevocation out;
  out.nickname = e->nickname;
  out.issuer = issuer;
  out.generation = g->info.number;
  out.serial = g->info.serial;
  out.certificate = o.certificate;
  out.reason = reason;
  return out;
}

Result<Entry> Vault::record_issuer_revocation(const IssuerRevocation& r) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("revoke a certificate"));
  CV_CHECK(check_nickname(r.nickname));
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    auto* e = find_entry(m, r.nickname);
    manifest::GenRecord* g = nullptr;
    if (e)
      for (auto& x : e->gens)
        if (x.info.number == r.generation) g = &x;
    if (!e || !g || g->info.serial != r.serial || !from_outside_issuer(*e, g->info))
      return fail(Code::kNotFound, "generation " + std::to_string(r.generation) + " of '" +
                                       r.nickname + "' is no longer in " + v.where() +
                                       " as it was; `certvault show` lists what is");
    if (revocation_of(*e, r.generation)) return {};  // recorded meanwhile by another process
    record_revocation(*e, *g, r.reason);
    return {};
  }));
  return to_entry(*v.entry(r.nickname));
}

Result<Entry> Vault::revoke(std::string_view nickname, std::optional<uint32_t> generation,
                            RevocationReason reason) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("revoke a certificate"));
  CV_CHECK(check_nickname(nickname));
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    auto* e = find_entry(m, nickname);
    if (!e) return no_entry_named(nickname, v.where(), v.nicknames());
    CV_TRY(g, to_revoke(v, *e, generation));
    CV_CHECK(check_revocable(*e, g->info));
    if (from_outside_issuer(*e, g->info))
      return fail(Code::kRefused, generation_of(*e, g->info.number) + " is from issuer '" +
                                      e->attributes().issuer +
                                      "', which revokes it: `certvault revoke` asks it");
    record_revocation(*e, *g, reason);
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

Result<std::string> Vault::make_crl(Time next_update, std::string file) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("make a CRL"));
  std::string pem;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    const auto* ca = v.active_ca();
    if (!ca)
      return fail(Code::kNotFound, v.where() +
                                       " has no CA, so it has no CRL to make; create one with "
                                       "`certvault ca create --end-date DATE`");
    CV_TRY(signer, ca_signer(v, *ca));
    const Time t = now();
    CV_CHECK(check_crl_signer(v, *ca, signer.cert.get(), t, next_update));
    CV_TRY(hash, pick_hash(ca->info.key_type, std::nullopt, m.header.policy));
    CV_TRY(listing, revoked_by(v, m, signer.cert.get()));
    CrlState state = m.header.crl.value_or(CrlState{});
    crl::CrlArgs args;
    args.issuer = signer.cert.get();
    args.signer = signer.key.get();
    args.hash = hash;
    args.number = state.number + 1;
    args.this_update = t;
    args.next_update = next_update;
    args.revoked = std::move(listing.listed);
    CV_TRY(made, crl::make(args));
    pem = std::move(made);
    m.header.crl = CrlState{args.number, t, next_update, file};
    return {};
  }));
  return pem;
}

std::optional<CrlState> Vault::crl_state() const {
  (void)impl_->refresh();
  return impl_->m.header.crl;
}

}  // namespace certvault

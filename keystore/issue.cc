// Issuing: the vault CA, client certificates, rotation, and the CSR/attach path for an
// external CA.
#include <openssl/x509v3.h>

#include <unordered_set>

#include "certificate.h"
#include "keys.h"
#include "renewal.h"
#include "seal.h"
#include "vault_impl.h"

namespace certvault {
namespace {

using Txn = Vault::Impl::Txn;

Result<ossl::Name> subject_or_cn(std::string_view subject, std::string_view cn) {
  if (subject.empty()) return certificate::common_name(cn);
  return certificate::parse_subject(subject);
}

std::string date_of(Time t) {
  return format_date(t);
}

Result<void> nickname_free(const Vault::Impl& v, std::string_view nickname) {
  if (const auto* e = v.entry(nickname))
    return fail(Code::kExists, "'" + e->nickname + "' is already in " + v.where() +
                                   "; choose another nickname, or `certvault rotate " +
                                   e->nickname + "` to replace its certificate");
  return {};
}

// A certificate that is not self-signed needs the vault CA.
Result<void> require_ca(const Vault::Impl& v, bool self_signed) {
  if (self_signed || v.active_ca()) return {};
  return fail(Code::kNotFound, v.where() +
                                   " has no CA; create one with `certvault ca create "
                                   "--end-date DATE`, or add --self-signed");
}

// Issuer of a new client certificate: the vault CA, or the key itself.
Result<std::optional<Signer>> issuer_for(const Vault::Impl& v, bool self_signed) {
  CV_CHECK(require_ca(v, self_signed));
  if (self_signed) return std::optional<Signer>();
  CV_TRY(signer, ca_signer(v, *v.active_ca()));
  return std::optional<Signer>(std::move(signer));
}

Result<ossl::Cert> issue_client(EVP_PKEY* key, X509_NAME* subject, std::optional<Signer>& issuer,
                                Time not_after, Hash hash, const X509_EXTENSION* alt_names) {
  certificate::IssueArgs args;
  args.alt_names = alt_names;
  args.subject_key = key;
  args.subject = subject;
  args.issuer = issuer ? issuer->cert.get() : nullptr;
  args.signer = issuer ? issuer->key.get() : key;
  args.not_after = not_after;
  args.hash = hash;
  return certificate::issue(args);
}

std::vector<ossl::Bytes> chain_of(const std::optional<Signer>& issuer) {
  if (!issuer) return {};
  return {ossl::cert_der(issuer->cert.get())};
}

// Commits `key` as a generation waiting for its certificate; a newer one replaces one
// still waiting. With `new_only`, an entry that already has a certificate is refused.
Result<void> add_pending(Vault::Impl& v, std::string_view nickname, EVP_PKEY* key, Hash hash,
                         const std::string& subject_text, bool new_only) {
  return v.transact([&](manifest::Manifest& m, Txn& txn) -> Result<void> {
    auto* e = find_entry(m, nickname);
    if (e && new_only && std::any_of(e->gens.begin(), e->gens.end(), [](const auto& g) {
          return g.info.status != Status::kPending;
        }))
      return fail(Code::kExists, "'" + e->nickname + "' is already in " + v.where() +
                                     " with a certificate; choose another nickname");
    if (!e) e = &manifest::add(m, new_id(), std::string(nickname));
    std::erase_if(e->gens, [&](const manifest::GenRecord& g) {
      if (g.info.status != Status::kPending) return false;
      txn.drop(g.object);
      return true;
    });
    uint32_t number = e->gens.empty() ? 1 : e->gens.back().info.number + 1;
    CV_TRY(rec, new_generation(txn, e->id, number, key, nullptr, {}, hash, IssuerKind::kExternal));
    rec.info.subject = subject_text;
    e->gens.push_back(std::move(rec));
    return {};
  });
}

}  // namespace

Result<Signer> ca_signer(const Vault::Impl& v, const manifest::CaRecord& ca) {
  CV_TRY(o, v.object(ca));
  CV_TRY(cert, ossl::cert_from_der(o.certificate));
  CV_TRY(key, v.open_key(o));
  return Signer{std::move(cert), std::move(key)};
}

// The hash follows the key that signs: the CA's, or the subject's own when self-signed
// or for a CSR.
Result<Hash> pick_hash(KeyType signer, std::optional<Hash> asked, const Policy& policy) {
  if (signer != KeyType::kEd25519) return asked.value_or(policy.default_hash);
  if (asked && *asked != Hash::kSha512)
    return fail(Code::kInvalidInput,
                "the signing key is Ed25519, which signs without a separate hash; leave out "
                "--hash");
  return Hash::kSha512;  // what EdDSA uses inside
}

Result<manifest::GenRecord> new_generation(Txn& txn, const std::string& entry_id, uint32_t number,
                                           EVP_PKEY* key, X509* cert,
                                           const std::vector<ossl::Bytes>& chain, Hash hash,
                                           IssuerKind issuer) {
  CV_TRY(key_type, keys::type_of(key));
  key_object::KeyObject o;
  o.vault_id = txn.impl().m.header.vault_id;
  o.owner = entry_id;
  o.generation = number;
  o.key_type = key_type;
  o.public_key = ossl::spki_der(key);
  if (cert) o.certificate = ossl::cert_der(cert);
  o.chain = chain;
  CV_TRY(hash_name, txn.seal(o, key));
  manifest::GenRecord r;
  r.object = hash_name;
  Generation& g = r.info;
  g.number = number;
  g.status = cert ? Status::kActive : Status::kPending;
  g.key_type = key_type;
  g.hash = hash;
  g.issuer = issuer;
  g.key_id = keys::key_id(key);
  g.created_at = now();
  if (cert) take_facts(g, certificate::facts(cert));
  return r;
}

void take_facts(Generation& g, const certificate::Facts& f) {
  g.fingerprint = f.fingerprint;
  g.serial = f.serial;
  g.subject = f.subject;
  g.issuer_name = f.issuer;
  g.not_before = f.not_before;
  g.not_after = f.not_after;
}

Result<void> check_end_date(Time not_after, const manifest::CaRecord* ca, const Policy& policy) {
  const std::string d = date_of(not_after);
  if (not_after <= now())
    return fail(Code::kRefused, "end date " + d + " is in the past; choose a later date");
  if (ca && not_after > ca->info.not_after)
    return fail(Code::kRefused,
                "end date " + d + " is after the vault CA's own end date " +
                    date_of(ca->info.not_after) +
                    "; choose an earlier date, or create a new CA with `certvault ca create "
                    "--replace --end-date DATE`");
  if (policy.max_lifetime && not_after > now() + *policy.max_lifetime)
    return fail(Code::kRefused, "end date " + d + " is beyond the policy's maximum lifetime of " +
                                    format_period(*policy.max_lifetime) + " (until " +
                                    date_of(now() + *policy.max_lifetime) +
                                    "); choose an earlier date, or lift the limit with "
                                    "`certvault policy set --max-lifetime PERIOD` or "
                                    "`certvault policy clear`");
  if (policy.max_end_date && not_after > *policy.max_end_date)
    return fail(Code::kRefused,
                "end date " + d + " is after the policy's latest end date " +
                    date_of(*policy.max_end_date) +
                    "; choose an earlier date, or lift the limit with `certvault policy set "
                    "--max-end-date DATE` or `certvault policy clear`");
  return {};
}

Result<void> check_client_cert(X509* cert, const Policy& policy) {
  if ((X509_get_extension_flags(cert) & EXFLAG_XKUSAGE) &&
      !(X509_get_extended_key_usage(cert) & XKU_SSL_CLIENT))
    return fail(Code::kInvalidInput,
                "the certificate is not for client authentication (its extended key usage "
                "lacks clientAuth); use a client certificate");
  const Time not_after = certificate::facts(cert).not_after;
  if (policy.max_lifetime && not_after > now() + *policy.max_lifetime)
    return fail(Code::kRefused, "the certificate's end date " + date_of(not_after) +
                                    " is beyond the policy's maximum lifetime of " +
                                    format_period(*policy.max_lifetime) +
                                    "; lift the limit with `certvault policy set --max-lifetime "
                                    "PERIOD` or `certvault policy clear`");
  if (policy.max_end_date && not_after > *policy.max_end_date)
    return fail(Code::kRefused,
                "the certificate's end date " + date_of(not_after) +
                    " is after the policy's latest end date " + date_of(*policy.max_end_date) +
                    "; lift the limit with `certvault policy set --max-end-date DATE` or "
                    "`certvault policy clear`");
  return {};
}

void supersede(manifest::EntryRecord& e) {
  for (auto& g : e.gens)
    if (g.info.status == Status::kActive) g.info.status = Status::kSuperseded;
}

manifest::EntryRecord* find_entry(manifest::Manifest& m, std::string_view nickname) {
  for (size_t i = 0; i < m.entries.size(); ++i)
    if (m.entries[i]->nickname == nickname) return &manifest::edit(m, i);
  return nullptr;
}

// --- the vault CA ------------------------------------------------------------------------

static Result<void> ca_free(const Vault::Impl& v, bool replace) {
  if (const auto* ca = v.active_ca(); ca && !replace)
    return fail(Code::kExists, v.where() + " already has a CA (" + ca->info.subject + ", until " +
                                   date_of(ca->info.not_after) +
                                   "); add --replace to retire it and issue from a new one");
  return {};
}

static Result<CaInfo> store_ca(Vault::Impl& v, EVP_PKEY* key, X509* cert, bool replace) {
  CaInfo info;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn& txn) -> Result<void> {
    CV_CHECK(ca_free(v, replace));
    manifest::CaRecord rec;
    rec.info.id = new_id(8);
    key_object::KeyObject o;
    o.vault_id = m.header.vault_id;
    o.owner = "ca:" + rec.info.id;
    CV_TRY(key_type, keys::type_of(key));
    o.key_type = key_type;
    o.public_key = ossl::spki_der(key);
    o.certificate = ossl::cert_der(cert);
    CV_TRY(object, txn.seal(o, key));
    rec.object = object;
    auto f = certificate::facts(cert);
    rec.info.key_type = key_type;
    rec.info.key_id = f.key_id;
    rec.info.fingerprint = f.fingerprint;
    rec.info.serial = f.serial;
    rec.info.subject = f.subject;
    rec.info.not_before = f.not_before;
    rec.info.not_after = f.not_after;
    rec.info.active = true;
    for (auto& c : m.cas) c.info.active = false;
    m.cas.push_back(rec);
    info = rec.info;
    return {};
  }));
  return info;
}

Result<CaInfo> Vault::create_ca(const CaRequest& req) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("create a CA"));
  CV_CHECK(v.refresh());
  CV_CHECK(ca_free(v, req.replace));
  // A CA is bound by no issuer and no policy date, only by the present.
  CV_CHECK(check_end_date(req.not_after, nullptr, Policy{}));
  const Policy& policy = v.m.header.policy;
  KeyType kt = req.key_type.value_or(policy.default_key_type);
  CV_TRY(subject, subject_or_cn(req.subject, v.m.header.label + " CA"));
  CV_TRY(key, keys::generate(kt));
  certificate::IssueArgs args;
  args.subject_key = key.get();
  args.subject = subject.get();
  args.signer = key.get();
  args.not_after = req.not_after;
  args.hash = policy.default_hash;
  args.profile = certificate::Profile::kCa;
  CV_TRY(cert, certificate::issue(args));
  return store_ca(v, key.get(), cert.get(), req.replace);
}

Result<CaInfo> Vault::import_ca(std::string_view cert_pem, std::string_view key_pem) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("import a CA"));
  CV_TRY(certs, certificate::certs_from_pem(cert_pem));
  if (sk_X509_num(certs.get()) < 1)
    return fail(Code::kInvalidInput, "no PEM certificate found in the CA certificate file");
  X509* cert = sk_X509_value(certs.get(), 0);
  CV_TRY(key, certificate::private_key_from_pem(key_pem));
  if (!keys::same_public(key.get(), X509_get0_pubkey(cert)))
    return fail(Code::kInvalidInput,
                "the CA certificate and the key file do not belong together; give the key "
                "that matches the certificate");
  CV_CHECK(keys::type_of(key.get()));
  auto f = certificate::facts(cert);
  if (!f.is_ca)
    return fail(Code::kInvalidInput, "certificate " + f.subject +
                                         " is not a CA certificate (basicConstraints CA:TRUE "
                                         "with keyCertSign); give a CA certificate");
  if (f.not_after <= now())
    return fail(Code::kRefused, "CA certificate " + f.subject + " expired on " +
                                    date_of(f.not_after) + "; give a valid CA certificate");
  return store_ca(v, key.get(), cert, /*replace=*/true);  // importing is the deliberate act
}

// --- client certificates -----------------------------------------------------------------

Result<Entry> Vault::create(const IssueRequest& req) {
  CV_TRY(created, create_many(std::span(&req, 1)));
  return std::move(created.front());
}

Result<std::vector<Entry>> Vault::create_many(std::span<const IssueRequest> requests) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("create a certificate"));
  CV_CHECK(v.refresh());
  const Policy policy = v.m.header.policy;
  struct Planned {
    const IssueRequest* req;
    Hash hash;
    ossl::Name subject;
    ossl::Ext alt_names;
    ossl::Pkey key;
  };
  std::vector<Planned> plan;
  std::unordered_set<std::string_view> names;
  auto precheck = [&](const IssueRequest& req) -> Result<void> {
    CV_CHECK(nickname_free(v, req.nickname));
    CV_CHECK(require_ca(v, req.self_signed));
    return check_end_date(req.not_after, req.self_signed ? nullptr : v.active_ca(),
                          v.m.header.policy);
  };
  // Every request is checked before any (possibly slow) key generation.
  for (const IssueRequest& req : requests) {
    CV_CHECK(check_nickname(req.nickname));
    if (!names.insert(req.nickname).second)
      return fail(Code::kExists, "nickname '" + req.nickname + "' is given twice");
    KeyType kt = req.key_type.value_or(policy.default_key_type);
    const auto* ca = v.active_ca();
    CV_TRY(hash, pick_hash(req.self_signed || !ca ? kt : ca->info.key_type, req.hash, policy));
    CV_TRY(subject, subject_or_cn(req.subject, req.nickname));
    CV_TRY(alt_names, certificate::parse_alt_names(req.alt_names));
    CV_CHECK(precheck(req));
    plan.push_back({&req, hash, std::move(subject), std::move(alt_names), nullptr});
  }
  for (Planned& p : plan) {
    CV_TRY(key, keys::generate(p.req->key_type.value_or(policy.default_key_type)));
    p.key = std::move(key);
  }
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn& txn) -> Result<void> {
    std::optional<Signer> ca;
    for (Planned& p : plan) {
      const IssueRequest& req = *p.req;
      CV_CHECK(precheck(req));
      if (!req.self_signed && !ca) {
        CV_TRY(signer, issuer_for(v, false));
        ca = std::move(signer);
      }
      std::optional<Signer> none;
      std::optional<Signer>& issuer = req.self_signed ? none : ca;
      CV_TRY(cert, issue_client(p.key.get(), p.subject.get(), issuer, req.not_after, p.hash,
                                p.alt_names.get()));
      std::string id = new_id();
      CV_TRY(rec, new_generation(txn, id, 1, p.key.get(), cert.get(), chain_of(issuer), p.hash,
                                 req.self_signed ? IssuerKind::kSelfSigned : IssuerKind::kVaultCa));
      manifest::add(m, id, req.nickname, {std::move(rec)});
    }
    return {};
  }));
  std::vector<Entry> out;
  for (const Planned& p : plan) out.push_back(to_entry(*v.entry(p.req->nickname)));
  return out;
}

namespace {

std::string by_hand(std::string_view nickname, std::string_view why) {
  const std::string n(nickname);
  return "'" + n + "' " + std::string(why) + "; renew it by hand: run `certvault csr '" + n +
         "' -o REQ.pem`, have the CA sign it, then `certvault attach '" + n + "' CERT.pem`";
}

// The generation a rotation replaces: the current one; or, once `revoke` took that away,
// the newest, revoked one: a new key is what a revocation calls for. A renewal needs a
// current one.
Result<std::pair<const manifest::EntryRecord*, const manifest::GenRecord*>> replaced_generation(
    const Vault::Impl& v, std::string_view nickname, bool renewal) {
  auto found = v.resolve(nickname, std::nullopt);
  if (found || renewal) return found;
  const auto* e = v.entry(nickname);
  if (!e) return found;
  for (auto g = e->gens.rbegin(); g != e->gens.rend(); ++g) {
    if (g->info.status == Status::kPending) continue;
    if (revocation_of(*e, g->info.number)) return std::pair{e, &*g};
    break;
  }
  return found;
}

// The end of a renewal's certificate: its lifetime as before, from now, ending no later than
// the policy and the issuing CA allow; refused when so short a certificate would be due for
// renewal again at once.
Result<Time> renewal_end(const Vault::Impl& v, const manifest::EntryRecord& e,
                         const Generation& old, bool self_signed) {
  const Policy& policy = v.m.header.policy;
  const Time t = now();
  Time end = t - certificate::kBackdate + (old.not_after - old.not_before);
  std::string limit, lift;
  if (policy.max_end_date && end > *policy.max_end_date) {
    end = *policy.max_end_date;
    limit = "the policy's latest end date";
    lift = "raise it with `certvault policy set --max-end-date DATE`";
  }
  if (policy.max_lifetime && end > t + *policy.max_lifetime) {
    end = t + *policy.max_lifetime;
    limit = "the policy's maximum lifetime of " + format_period(*policy.max_lifetime);
    lift = "raise it with `certvault policy set --max-lifetime PERIOD`";
  }
  const manifest::CaRecord* ca = self_signed ? nullptr : v.active_ca();
  if (ca && end > ca->info.not_after) {
    end = ca->info.not_after;
    limit = "the vault CA's own end date";
    lift = "renew the CA with `certvault ca create --replace --end-date DATE`";
  }
  const RenewRule rule = e.attributes().renew_rule.value_or(policy.renew);
  const auto start = window_start(rule, t, end);
  if (end > t && (!start || *start > t)) return end;
  if (limit.empty())
    return fail(Code::kRefused,
                "'" + e.nickname + "' lives " +
                    std::to_string((old.not_after - old.not_before + 43200) / 86400) +
                    " days, no longer than its renewal window (" + rule_text(rule) +
                    "), so a renewal would be due again at once; give it a "
                    "shorter window with `certvault renew-rule '" +
                    e.nickname + "' --before PERIOD`");
  return fail(Code::kRefused, "renewing '" + e.nickname + "' now would give a certificate ending " +
                                  format_time(end) + " (" + limit +
                                  "), already within its renewal window (" + rule_text(rule) +
                                  "), so it would be due again at once; " + lift);
}

}  // namespace

Result<Entry> Vault::rotate(std::string_view nickname, std::optional<Time> not_after) {
  return replace_key(nickname, not_after, false);
}

Result<Entry> Vault::renew(std::string_view nickname, std::optional<uint32_t> if_current) {
  return replace_key(nickname, std::nullopt, true, if_current);
}

Result<Entry> Vault::replace_key(std::string_view nickname, std::optional<Time> not_after,
                                 bool renewal, std::optional<uint32_t> if_current) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked(renewal ? "renew a certificate" : "rotate a certificate"));
  CV_CHECK(v.refresh());
  CV_TRY(found, replaced_generation(v, nickname, renewal));
  const Generation old = found.second->info;
  if (if_current && old.number != *if_current)
    return fail(Code::kRefused,
                "'" + std::string(nickname) + "' changed meanwhile; check it and try again");
  if (renewal && old.key_imported)
    return fail(Code::kRefused, by_hand(nickname, "was imported, so the vault cannot renew it"));
  if (old.issuer == IssuerKind::kExternal)
    return fail(Code::kRefused, by_hand(nickname, "was issued by an outside CA"));
  const bool self = old.issuer == IssuerKind::kSelfSigned;
  Time end = 0;
  if (renewal) {
    CV_CHECK(require_ca(v, self));
    CV_TRY(capped, renewal_end(v, *found.first, old, self));
    end = capped;
  } else {
    end = not_after.value_or(now() - certificate::kBackdate + (old.not_after - old.not_before));
  }
  CV_TRY(old_object, v.object(*found.first, *found.second));
  CV_TRY(old_cert, ossl::cert_from_der(old_object.certificate));
  ossl::Name subject(X509_NAME_dup(X509_get_subject_name(old_cert.get())));
  const ossl::Ext alt_names = certificate::alt_names_of(old_cert.get());  // kept as they were
  auto precheck = [&]() -> Result<void> {
    CV_CHECK(require_ca(v, self));
    return check_end_date(end, self ? nullptr : v.active_ca(), v.m.header.policy);
  };
  CV_CHECK(precheck());
  CV_TRY(key, keys::generate(old.key_type));
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn& txn) -> Result<void> {
    CV_CHECK(precheck());
    // What was rotated must still be what is current: another process may have rotated,
    // disabled or deleted it since.
    auto now_found = replaced_generation(v, nickname, renewal);
    if (!now_found || now_found->second->info.number != old.number)
      return fail(Code::kRefused,
                  "'" + std::string(nickname) + "' changed meanwhile; check it and try again");
    auto* e = find_entry(m, nickname);
    CV_TRY(issuer, issuer_for(v, self));
    CV_TRY(cert, issue_client(key.get(), subject.get(), issuer, end, old.hash, alt_names.get()));
    CV_TRY(rec, new_generation(txn, e->id, e->gens.back().info.number + 1, key.get(), cert.get(),
                               chain_of(issuer), old.hash, old.issuer));
    supersede(*e);
    e->gens.push_back(std::move(rec));
    // A success ends a run of failed renewals (their total stays).
    if (e->attributes().renewal.failures > 0 || e->attributes().renewal.not_before) {
      manifest::edit_attributes(*e).renewal.failures = 0;
      manifest::edit_attributes(*e).renewal.not_before = 0;
    }
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

// --- external CA: CSR, then attach ---------------------------------------------------------

Result<std::string> Vault::make_csr(const CsrRequest& req) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("make a certificate request"));
  CV_CHECK(check_nickname(req.nickname));
  CV_CHECK(v.refresh());
  const Policy policy = v.m.header.policy;
  KeyType kt = policy.default_key_type;
  const auto* entry = v.entry(req.nickname);
  if (entry) kt = entry->gens.back().info.key_type;
  kt = req.key_type.value_or(kt);
  CV_TRY(hash, pick_hash(kt, req.hash, policy));
  // A request for an entry that has a certificate (a renewal at an outside CA) asks for the
  // same subject and alternative names, unless told otherwise.
  ossl::Cert had;
  if (entry) {
    for (auto g = entry->gens.rbegin(); g != entry->gens.rend() && !had; ++g) {
      if (g->info.status == Status::kPending) continue;
      CV_TRY(o, v.object(*entry, *g));
      CV_TRY(cert, ossl::cert_from_der(o.certificate));
      had = std::move(cert);
    }
  }
  auto pick_subject = [&]() -> Result<ossl::Name> {
    if (had && req.subject.empty())
      return ossl::Name(X509_NAME_dup(X509_get_subject_name(had.get())));
    return subject_or_cn(req.subject, req.nickname);
  };
  CV_TRY(subject, pick_subject());
  if (!subject) return ossl::crypto_fail("cannot copy the subject");
  CV_TRY(alt_names, certificate::parse_alt_names(req.alt_names));
  if (req.alt_names.empty() && had) alt_names = certificate::alt_names_of(had.get());
  CV_TRY(key, keys::generate(kt));
  CV_TRY(pem, certificate::make_csr(key.get(), subject.get(), hash, alt_names.get()));
  CV_CHECK(
      add_pending(v, req.nickname, key.get(), hash, certificate::name_text(subject.get()), false));
  return pem;
}

Result<Entry> Vault::generate_key(std::string_view nickname, KeyType key_type) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("generate a key"));
  CV_CHECK(check_nickname(nickname));
  CV_CHECK(v.refresh());
  CV_TRY(hash, pick_hash(key_type, std::nullopt, v.m.header.policy));
  ossl::Name subject = certificate::common_name(nickname);
  CV_TRY(key, keys::generate(key_type));
  CV_CHECK(add_pending(v, nickname, key.get(), hash, certificate::name_text(subject.get()), true));
  return to_entry(*v.entry(nickname));
}

Result<Entry> Vault::attach(std::string_view nickname, std::string_view cert_pem) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("attach a certificate"));
  CV_CHECK(check_nickname(nickname));
  CV_CHECK(v.refresh());
  const std::string nick(nickname);
  auto pending_of = [&]() -> Result<const manifest::GenRecord*> {
    const auto* e = v.entry(nickname);
    if (!e)
      return no_entry_named(nick, v.where(), v.nicknames(),
                            "run `certvault csr " + nick + " -o REQ.pem` first");
    for (auto it = e->gens.rbegin(); it != e->gens.rend(); ++it)
      if (it->info.status == Status::kPending) return &*it;
    return fail(Code::kRefused, "'" + nick +
                                    "' has no certificate request waiting; run "
                                    "`certvault csr " +
                                    nick + " -o REQ.pem` first");
  };
  CV_TRY(pending, pending_of());
  CV_TRY(certs, certificate::certs_from_any(cert_pem));
  if (sk_X509_num(certs.get()) < 1)
    return fail(Code::kInvalidInput,
                "no certificate found in the file given to attach; give the CA's answer as "
                "PEM (-----BEGIN CERTIFICATE-----), DER, or a PKCS#7 chain (.p7b)");
  CV_TRY(o, v.object(*v.entry(nickname), *pending));
  // The certificate for this request's key, wherever it is in the file (a PKCS#7 chain
  // has no order); the first one when none is, to say so.
  X509* leaf = sk_X509_value(certs.get(), 0);
  for (int i = 0; i < sk_X509_num(certs.get()); ++i)
    if (ossl::spki_der(X509_get0_pubkey(sk_X509_value(certs.get(), i))) == o.public_key)
      leaf = sk_X509_value(certs.get(), i);
  if (ossl::spki_der(X509_get0_pubkey(leaf)) != o.public_key)
    return fail(Code::kInvalidInput, "the certificate is not for the key of '" + nick +
                                         "' (it answers another request); give the certificate "
                                         "the CA issued for this request");
  auto f = certificate::facts(leaf);
  if (f.not_after <= now())
    return fail(Code::kRefused, "the certificate expired on " + date_of(f.not_after) +
                                    "; ask the CA for a valid one");
  CV_CHECK(check_client_cert(leaf, v.m.header.policy));
  o.certificate = ossl::cert_der(leaf);
  o.chain.clear();
  const auto ordered = certificate::chain_order(leaf, certs.get());
  for (size_t i = 1; i < ordered.size(); ++i) o.chain.push_back(ossl::cert_der(ordered[i]));
  const uint32_t number = pending->info.number;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn& txn) -> Result<void> {
    auto* e = find_entry(m, nickname);
    auto it =
        e ? std::find_if(e->gens.begin(), e->gens.end(),
                         [&](const auto& g) {
                           return g.info.number == number && g.info.status == Status::kPending;
                         })
          : decltype(e->gens.begin()){};
    if (!e || it == e->gens.end())
      return fail(Code::kRefused, "the request of '" + nick + "' changed meanwhile; try again");
    CV_TRY(object, txn.put(o));  // same sealed key, now with its certificate
    txn.drop(it->object);
    supersede(*e);
    Generation& g = it->info;
    g.status = Status::kActive;
    take_facts(g, f);
    if (auto h = certificate::signature_hash(leaf)) g.hash = *h;
    it->object = object;
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

}  // namespace certvault

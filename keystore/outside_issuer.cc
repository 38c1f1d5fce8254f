// Outside issuers reached by a protocol (CMP, ACME): their configuration in the vault header,
// their sealed shared secret or account key, and enrollment around the protocol exchange, which
// itself is not keystore's (tools/cmp_client.cc, tools/acme_client.cc). docs/lifecycle.md, "Outside
// CAs".
#include <openssl/x509_vfy.h>

#include <algorithm>

#include "certificate.h"
#include "keys.h"
#include "seal.h"
#include "vault_impl.h"

namespace certvault {
namespace {

using Txn = Vault::Impl::Txn;

// A certificate may be a little ahead of this host's clock, no more.
constexpr Time kClockSkew = 300;

const manifest::IssuerRecord* issuer_record(const manifest::Manifest& m, std::string_view name) {
  for (const auto& i : m.header.issuers)
    if (i.info.name == name) return &i;
  return nullptr;
}

Result<const manifest::IssuerRecord*> must_find_issuer(const Vault::Impl& v,
                                                       std::string_view name) {
  if (const auto* i = issuer_record(v.m, name)) return i;
  return fail(Code::kNotFound, "no issuer named '" + std::string(name) + "' in " + v.where() +
                                   "; `certvault issuer list` shows them, `certvault issuer add` "
                                   "adds one");
}

Result<void> check_issuer(const Vault::Impl& v, const OutsideIssuer& i, const SecureBytes* secret) {
  if (auto ok = check_nickname(i.name); !ok)
    return fail(Code::kInvalidInput, "issuer name: " + ok.error().message);
  if (!i.url.starts_with("http://") && !i.url.starts_with("https://"))
    return fail(Code::kInvalidInput, "the server '" + i.url +
                                         "' is not an http:// or https:// URL; give the URL of "
                                         "the CA's CMP endpoint or ACME directory");
  if (std::any_of(i.url.begin(), i.url.end(),
                  [](unsigned char c) { return c <= 0x20 || c == 0x7f; }))
    return fail(Code::kInvalidInput, "the CMP server URL contains a space or control character");
  // A user and password in the URL would be kept in the clear and shown in messages.
  if (const auto host = i.url.substr(i.url.find("//") + 2);
      host.substr(0, host.find('/')).find('@') != std::string::npos)
    return fail(Code::kInvalidInput,
                "the CMP server URL holds a user name or password (user@host); give the URL "
                "without it, and authenticate with --cmp-ref and --cmp-secret-file");
  if (i.protocol == IssuerProtocol::kAcme) {
    if (!i.client_cert.empty() || !i.reference.empty())
      return fail(Code::kInvalidInput,
                  "an ACME issuer authenticates with an account key the vault makes; "
                  "--cmp-ref, --cmp-secret-file and --cmp-cert do not apply");
    if ((secret != nullptr) != !i.eab_kid.empty() || (secret && secret->empty()))
      return fail(Code::kInvalidInput,
                  "external account binding needs its key id and a non-empty MAC key "
                  "(--eab KID:HMAC-FILE)");
    if (!i.http01_listen.empty()) {
      const auto colon = i.http01_listen.rfind(':');
      const std::string port = colon == std::string::npos ? "" : i.http01_listen.substr(colon + 1);
      if (colon == 0 || port.empty() || port.size() > 5 ||
          !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
          std::stoi(port) == 0 || std::stoi(port) > 65535)
        return fail(Code::kInvalidInput, "--http01-listen '" + i.http01_listen +
                                             "' is not ADDRESS:PORT (say 127.0.0.1:5002)");
    }
    if (std::any_of(i.dns01_hook.begin(), i.dns01_hook.end(),
                    [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
      return fail(Code::kInvalidInput,
                  "--dns01-hook takes a command on one line without control characters; put "
                  "longer scripts in a file and run it");
  } else if (!i.http01_listen.empty() || !i.dns01_hook.empty() || !i.eab_kid.empty())
    return fail(Code::kInvalidInput, "--http01-listen, --dns01-hook and --eab go with --acme");
  else if ((secret != nullptr) == !i.client_cert.empty())
    return fail(Code::kInvalidInput,
                "give either a shared secret (--cmp-ref and --cmp-secret-file) or a vault "
                "certificate (--cmp-cert) to authenticate initial requests, not both");
  if (i.protocol == IssuerProtocol::kCmp && secret && (secret->empty() || i.reference.empty()))
    return fail(Code::kInvalidInput,
                "a shared secret needs its reference (--cmp-ref) and must not be empty");
  if (!i.client_cert.empty()) {
    const auto* e = v.entry(i.client_cert);
    if (!e || !to_entry(*e).current())
      return fail(Code::kNotFound, "--cmp-cert: no entry with an active certificate named '" +
                                       i.client_cert + "' in " + v.where());
  }
  if (i.trust.empty())
    return fail(Code::kInvalidInput,
                "an issuer needs a trust anchor (--trust CA.pem) that its certificates chain to");
  for (const auto* list : {&i.trust, &i.server_ca})
    for (const auto& der : *list)
      if (!ossl::cert_from_der(der))
        return fail(Code::kInvalidInput, "a trust anchor of issuer '" + i.name +
                                             "' is not a certificate; give PEM certificates");
  return {};
}

// Dates a certificate from outside must have to be stored now.
Result<void> check_dates(const certificate::Facts& f) {
  const Time t = now();
  if (f.not_after <= t) return fail(Code::kRefused, "it expired on " + format_time(f.not_after));
  if (f.not_before > f.not_after || f.not_before > t + kClockSkew)
    return fail(Code::kRefused, "it is not valid before " + format_time(f.not_before));
  return {};
}

// `leaf` chains to one of `issuer`'s trust anchors, through `others` if need be; the chain
// above the leaf, issuer first.
Result<std::vector<ossl::Bytes>> verify_chain(const OutsideIssuer& issuer, X509* leaf,
                                              STACK_OF(X509) * others) {
  using Store = ossl::Ptr<X509_STORE, X509_STORE_free>;
  using StoreCtx = ossl::Ptr<X509_STORE_CTX, X509_STORE_CTX_free>;
  Store store(X509_STORE_new());
  StoreCtx ctx(X509_STORE_CTX_new_ex(ossl::libctx(), nullptr));
  if (!store || !ctx) return ossl::crypto_fail("cannot check a certificate chain");
  for (const auto& der : issuer.trust) {
    CV_TRY(anchor, ossl::cert_from_der(der));
    if (!X509_STORE_add_cert(store.get(), anchor.get()))
      return ossl::crypto_fail("cannot load a trust anchor");
  }
  if (!X509_STORE_CTX_init(ctx.get(), store.get(), leaf, others))
    return ossl::crypto_fail("cannot check a certificate chain");
  X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(ctx.get()) != 1)
    return fail(Code::kRefused,
                std::string("it does not chain to the issuer's trust anchor (") +
                    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get())) + ")");
  std::vector<ossl::Bytes> chain;
  STACK_OF(X509)* verified = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 1; i < sk_X509_num(verified); ++i)
    chain.push_back(ossl::cert_der(sk_X509_value(verified, i)));
  return chain;
}

ossl::Bytes name_der(const X509_NAME* name) {
  return ossl::to_der<X509_NAME, i2d_X509_NAME>(name);
}

}  // namespace

Result<std::vector<std::vector<uint8_t>>> certificates_in(std::string_view text,
                                                          std::string_view what) {
  auto certs = certificate::certs_from_any(text);
  if (!certs || sk_X509_num(certs->get()) < 1)
    return fail(Code::kInvalidInput,
                "no certificate found in " + std::string(what) + "; give PEM certificates");
  std::vector<std::vector<uint8_t>> out;
  for (int i = 0; i < sk_X509_num(certs->get()); ++i)
    out.push_back(ossl::cert_der(sk_X509_value(certs->get(), i)));
  return out;
}

std::vector<OutsideIssuer> Vault::issuers() const {
  (void)impl_->refresh();
  std::vector<OutsideIssuer> out;
  for (const auto& i : impl_->m.header.issuers) out.push_back(i.info);
  return out;
}

std::optional<OutsideIssuer> Vault::find_issuer(std::string_view name) const {
  (void)impl_->refresh();
  if (const auto* i = issuer_record(impl_->m, name)) return i->info;
  return std::nullopt;
}

Result<SecureBytes> Vault::issuer_secret(std::string_view name) const {
  const Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("use an issuer's shared secret"));
  CV_CHECK(v.refresh());
  CV_TRY(i, must_find_issuer(v, name));
  const bool acme = i->info.protocol == IssuerProtocol::kAcme;
  const auto& sealed = acme ? i->sealed_eab_key : i->sealed_secret;
  if (sealed.empty())
    return fail(Code::kNotFound, "issuer '" + i->info.name + "' has no shared secret");
  auto secret = seal::open(v.seal_key, sealed,
                           acme ? manifest::issuer_eab_key_ad(v.m.header.vault_id, i->info.name)
                                : manifest::issuer_secret_ad(v.m.header.vault_id, i->info.name));
  if (!secret)
    return fail(Code::kTampered, v.where() +
                                     " failed authentication: the shared secret of issuer '" +
                                     i->info.name + "' does not open; restore from a backup");
  return secret;
}

Result<PrivateKey> Vault::issuer_account_key(std::string_view name) const {
  const Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("use an issuer's account key"));
  CV_CHECK(v.refresh());
  CV_TRY(i, must_find_issuer(v, name));
  if (i->info.protocol != IssuerProtocol::kAcme)
    return fail(Code::kNotFound, "issuer '" + i->info.name + "' has no ACME account key");
  auto der = seal::open(v.seal_key, i->sealed_secret,
                        manifest::issuer_account_key_ad(v.m.header.vault_id, i->info.name));
  if (!der)
    return fail(Code::kTampered, v.where() + " failed authentication: the account key of issuer '" +
                                     i->info.name + "' does not open; restore from a backup");
  CV_TRY(key, keys::from_private_der(*der));
  PrivateKey out;
  out.reset(key.release());
  return out;
}

Result<OutsideIssuer> Vault::set_issuer_account(std::string_view name, std::string_view account) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("record an issuer's account"));
  OutsideIssuer out;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    for (auto& i : m.header.issuers)
      if (i.info.name == name && i.info.protocol == IssuerProtocol::kAcme) {
        i.info.account = std::string(account);
        out = i.info;
        return {};
      }
    return std::unexpected(must_find_issuer(v, name).error());
  }));
  return out;
}

Result<OutsideIssuer> Vault::add_issuer(const OutsideIssuer& issuer, const SecureBytes* secret) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("add an issuer"));
  CV_CHECK(v.refresh());
  manifest::IssuerRecord rec;
  rec.info = issuer;
  rec.info.has_secret = secret != nullptr || issuer.protocol == IssuerProtocol::kAcme;
  rec.info.account.clear();
  CV_CHECK(check_issuer(v, rec.info, secret));
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    if (issuer_record(m, issuer.name))
      return fail(Code::kExists, "'" + issuer.name + "' is already an issuer of " + v.where() +
                                     "; remove it first with `certvault issuer remove`");
    if (issuer.protocol == IssuerProtocol::kAcme) {
      // RFC 8555 7.3: the account is the key; made here, it never leaves the vault sealed.
      CV_TRY(key, keys::generate(KeyType::kEcP256));
      CV_TRY(der, keys::private_der(key.get()));
      rec.sealed_secret = seal::seal(
          v.seal_key, der.span(), manifest::issuer_account_key_ad(m.header.vault_id, issuer.name));
      if (secret)
        rec.sealed_eab_key =
            seal::seal(v.seal_key, secret->span(),
                       manifest::issuer_eab_key_ad(m.header.vault_id, issuer.name));
    } else if (secret) {
      rec.sealed_secret = seal::seal(v.seal_key, secret->span(),
                                     manifest::issuer_secret_ad(m.header.vault_id, issuer.name));
    }
    m.header.issuers.push_back(rec);
    return {};
  }));
  return rec.info;
}

Result<void> Vault::remove_issuer(std::string_view name) {
  Impl& v = *impl_;
  return v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    auto& list = m.header.issuers;
    auto it =
        std::find_if(list.begin(), list.end(), [&](const auto& i) { return i.info.name == name; });
    if (it == list.end()) return std::unexpected(must_find_issuer(v, name).error());
    std::string users;
    for (const auto& e : m.entries)
      if (e->attributes().issuer == name)
        users += (users.empty() ? "'" : ", '") + e->nickname + "'";
    if (!users.empty())
      return fail(Code::kRefused, "issuer '" + std::string(name) + "' still renews " + users +
                                      "; delete those entries first");
    list.erase(it);
    return {};
  });
}

Result<Enrollment> Vault::begin_enrollment(const EnrollmentRequest& req) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("enroll at an outside CA"));
  CV_CHECK(check_nickname(req.nickname));
  CV_CHECK(v.refresh());
  if (const auto* e = v.entry(req.nickname))
    return fail(Code::kExists, "'" + e->nickname + "' is already in " + v.where() +
                                   "; choose another nickname, or `certvault renew " + e->nickname +
                                   "` to renew it");
  CV_TRY(issuer, must_find_issuer(v, req.issuer));
  const Policy& policy = v.m.header.policy;
  if (req.not_after) CV_CHECK(check_end_date(*req.not_after, nullptr, policy));
  CV_TRY(subject, req.subject.empty() ? Result<ossl::Name>(certificate::common_name(req.nickname))
                                      : certificate::parse_subject(req.subject));
  CV_TRY(alt_names, certificate::parse_alt_names(req.alt_names));
  CV_TRY(key, keys::generate(req.key_type.value_or(policy.default_key_type)));
  Enrollment out;
  out.nickname = req.nickname;
  out.issuer = issuer->info.name;
  out.key.reset(key.release());
  out.subject = name_der(subject.get());
  if (alt_names) out.alt_names = ossl::to_der<X509_EXTENSION, i2d_X509_EXTENSION>(alt_names.get());
  out.not_after = req.not_after;
  return out;
}

Result<Enrollment> Vault::begin_renewal(std::string_view nickname,
                                        std::optional<uint32_t> if_current) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("renew a certificate"));
  CV_CHECK(v.refresh());
  CV_TRY(found, v.resolve(nickname, std::nullopt));
  const auto& [e, g] = found;
  if (if_current && g->info.number != *if_current)
    return fail(Code::kRefused, "'" + e->nickname + "' changed meanwhile; check it and try again");
  const std::string& issuer = e->attributes().issuer;
  if (issuer.empty() || g->info.key_imported || g->info.issuer != IssuerKind::kExternal)
    return fail(Code::kRefused, "'" + e->nickname +
                                    "' was not enrolled from an outside issuer; renew it with "
                                    "`certvault renew`");
  CV_CHECK(must_find_issuer(v, issuer));
  CV_TRY(o, v.object(*e, *g));
  CV_TRY(cert, ossl::cert_from_der(o.certificate));
  // The CA decides the lifetime, unless the policy would refuse what it gives as before.
  const Policy& policy = v.m.header.policy;
  const Time t = now();
  std::optional<Time> end;
  const Time before = t + (g->info.not_after - g->info.not_before);
  if (policy.max_lifetime && before > t + *policy.max_lifetime) end = t + *policy.max_lifetime;
  if (policy.max_end_date && before > *policy.max_end_date)
    end = std::min(end.value_or(*policy.max_end_date), *policy.max_end_date);
  CV_TRY(key, keys::generate(g->info.key_type));
  Enrollment out;
  out.nickname = e->nickname;
  out.issuer = issuer;
  out.key.reset(key.release());
  out.subject = name_der(X509_get_subject_name(cert.get()));
  if (ossl::Ext alt = certificate::alt_names_of(cert.get()))
    out.alt_names = ossl::to_der<X509_EXTENSION, i2d_X509_EXTENSION>(alt.get());
  out.not_after = end;
  out.renews = g->info.number;
  return out;
}

namespace {

// An outside CA's answer as the vault accepts it.
struct Accepted {
  ossl::Cert leaf;
  std::vector<ossl::Bytes> chain;  // above the leaf, up to the trust anchor
  OutsideIssuer issuer;            // as configured when it was checked
};

Result<Accepted> accept(const Vault::Impl& v, const Enrollment& en,
                        std::span<const std::vector<uint8_t>> certs) {
  CV_TRY(issuer, must_find_issuer(v, en.issuer));
  auto refused = [&](const Error& why) {
    return fail(why.code == Code::kCrypto ? Code::kCrypto : Code::kRefused,
                "issuer '" + en.issuer + "' sent a certificate for '" + en.nickname +
                    "' that the vault refuses: " + why.message + "; nothing was stored");
  };
  if (certs.empty()) return refused({Code::kRefused, "it sent none"});
  std::vector<ossl::Cert> parsed;
  for (const auto& der : certs) {
    auto cert = ossl::cert_from_der(der);
    if (!cert) return refused({Code::kRefused, "it is not a certificate"});
    parsed.push_back(std::move(*cert));
  }
  X509* leaf = parsed.front().get();
  // What the certificate says about itself first, then whether it is ours and whom to trust.
  if (auto ok = check_client_cert(leaf, v.m.header.policy); !ok) return refused(ok.error());
  if (auto ok = check_dates(certificate::facts(leaf)); !ok) return refused(ok.error());
  if (ossl::spki_der(X509_get0_pubkey(leaf)) != ossl::spki_der(en.key.get()))
    return refused({Code::kRefused, "it is for another key than the one the vault made"});
  ossl::CertStack others(sk_X509_new_null());
  if (!others) return ossl::crypto_fail("out of memory");
  for (size_t i = 1; i < parsed.size(); ++i) {
    if (!sk_X509_push(others.get(), parsed[i].get())) return ossl::crypto_fail("out of memory");
    X509_up_ref(parsed[i].get());
  }
  auto chain = verify_chain(issuer->info, leaf, others.get());
  if (!chain) return refused(chain.error());
  return Accepted{std::move(parsed.front()), std::move(*chain), issuer->info};
}

}  // namespace

Result<void> Vault::check_enrollment(const Enrollment& en,
                                     std::span<const std::vector<uint8_t>> certs) const {
  const Impl& v = *impl_;
  CV_CHECK(v.refresh());
  CV_CHECK(accept(v, en, certs));
  return {};
}

Result<Entry> Vault::finish_enrollment(const Enrollment& en,
                                       std::span<const std::vector<uint8_t>> certs) {
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("store a certificate"));
  CV_CHECK(v.refresh());
  CV_TRY(accepted, accept(v, en, certs));
  X509* leaf = accepted.leaf.get();
  const auto& chain = accepted.chain;
  const OutsideIssuer& config = accepted.issuer;
  const Hash hash = certificate::signature_hash(leaf).value_or(Hash::kSha256);
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn& txn) -> Result<void> {
    const auto* now_issuer = issuer_record(m, en.issuer);
    if (!now_issuer || now_issuer->info != config)
      return fail(Code::kRefused,
                  "issuer '" + en.issuer + "' changed meanwhile; nothing was stored; try again");
    auto* e = find_entry(m, en.nickname);
    if (en.renews == 0) {
      if (e)
        return fail(Code::kExists, "'" + e->nickname + "' was created meanwhile in " + v.where() +
                                       "; nothing was stored");
      const std::string id = new_id();
      CV_TRY(rec,
             new_generation(txn, id, 1, en.key.get(), leaf, chain, hash, IssuerKind::kExternal));
      auto& added = manifest::add(m, id, en.nickname, {std::move(rec)});
      manifest::edit_attributes(added).issuer = en.issuer;
      return {};
    }
    auto current = v.resolve(en.nickname, std::nullopt);
    if (!e || !current || current->second->info.number != en.renews ||
        e->attributes().issuer != en.issuer)
      return fail(Code::kRefused,
                  "'" + en.nickname + "' changed meanwhile; nothing was stored; try again");
    CV_TRY(rec, new_generation(txn, e->id, e->gens.back().info.number + 1, en.key.get(), leaf,
                               chain, hash, IssuerKind::kExternal));
    supersede(*e);
    e->gens.push_back(std::move(rec));
    // A success ends a run of failed renewals (their total stays).
    if (e->attributes().renewal.failures > 0 || e->attributes().renewal.not_before) {
      manifest::edit_attributes(*e).renewal.failures = 0;
      manifest::edit_attributes(*e).renewal.not_before = 0;
    }
    return {};
  }));
  return to_entry(*v.entry(en.nickname));
}

}  // namespace certvault

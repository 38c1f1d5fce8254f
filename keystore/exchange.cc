// Moving identities in and out: PKCS#12 and PEM import, one-time PKCS#12 export.
#include <fcntl.h>
#include <unistd.h>

#include <functional>

#include "certificate.h"
#include "keys.h"
#include "pkcs12.h"
#include "seal.h"
#include "vault_impl.h"

namespace certvault {
namespace {

using Txn = Vault::Impl::Txn;

Result<Entry> import_identity(Vault::Impl& v, std::string_view nickname, EVP_PKEY* key, X509* cert,
                              STACK_OF(X509) * chain) {
  // The callers checked the nickname and the lock before parsing their input.
  CV_TRY(key_type, keys::type_of(key));
  const std::string key_id = keys::key_id(key);
  std::vector<ossl::Bytes> chain_der;
  for (int i = 0; chain && i < sk_X509_num(chain); ++i)
    chain_der.push_back(ossl::cert_der(sk_X509_value(chain, i)));
  auto f = certificate::facts(cert);
  const Hash hash = certificate::signature_hash(cert).value_or(
      key_type == KeyType::kEd25519 ? Hash::kSha512 : Hash::kSha256);
  const IssuerKind issuer = f.self_issued ? IssuerKind::kSelfSigned : IssuerKind::kExternal;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn& txn) -> Result<void> {
    // An expired certificate is imported all the same, so that `check` reports it.
    CV_CHECK(check_client_cert(cert, m.header.policy));
    if (const auto* e = v.entry(nickname))
      return fail(Code::kExists, "'" + e->nickname + "' is already in " + v.where() +
                                     "; choose another nickname with --nickname");
    v.index_ids();
    if (auto it = v.by_key_id.find(key_id); it != v.by_key_id.end())
      return fail(Code::kExists, "this key is already in " + v.where() + " as '" +
                                     v.m.entries[it->second]->nickname + "'; nothing imported");
    std::string id = new_id();
    CV_TRY(rec, new_generation(txn, id, 1, key, cert, chain_der, hash, issuer));
    rec.info.key_imported = true;
    manifest::add(m, id, std::string(nickname), {std::move(rec)});
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

}  // namespace

Result<Entry> Vault::import_pkcs12(std::string_view nickname, std::span<const uint8_t> der,
                                   const SecureBytes& password) {
  CV_CHECK(impl_->require_unlocked("import a certificate"));
  CV_CHECK(check_nickname(nickname));
  CV_TRY(p12, pkcs12::parse(der, password, "the PKCS#12 input"));
  return import_identity(*impl_, nickname, p12.key.get(), p12.cert.get(), p12.chain.get());
}

Result<Entry> Vault::import_pem(std::string_view nickname, std::string_view pem) {
  CV_CHECK(impl_->require_unlocked("import a certificate"));
  CV_CHECK(check_nickname(nickname));
  CV_TRY(certs, certificate::certs_from_pem(pem));
  CV_TRY(key, certificate::private_key_from_pem(pem));
  // The certificate for the key may come anywhere in the file; the others are its chain.
  int leaf = -1;
  for (int i = 0; i < sk_X509_num(certs.get()); ++i)
    if (keys::same_public(key.get(), X509_get0_pubkey(sk_X509_value(certs.get(), i)))) leaf = i;
  if (leaf < 0)
    return fail(Code::kInvalidInput,
                "the PEM input has no certificate for its private key; "
                "put the certificate and its key in one file");
  ossl::Cert cert(X509_dup(sk_X509_value(certs.get(), leaf)));
  ossl::CertStack chain(sk_X509_new_null());
  for (int i = 0; i < sk_X509_num(certs.get()); ++i)
    if (i != leaf) sk_X509_push(chain.get(), X509_dup(sk_X509_value(certs.get(), i)));
  return import_identity(*impl_, nickname, key.get(), cert.get(), chain.get());
}

namespace {

// The one export: checks the policy, builds the PKCS#12 and records the export. `stage`
// gets the bytes before the commit that records them, so a caller that must put them
// somewhere first (a file) never leaves an export recorded without its output.
Result<std::pair<ossl::Bytes, SecureBytes>> export_recorded(
    Vault::Impl& v, const ExportRequest& req,
    const std::function<Result<void>(const ossl::Bytes&)>& stage) {
  CV_CHECK(v.require_unlocked("export a certificate"));
  CV_CHECK(v.refresh());
  const std::string nick(req.nickname);
  CV_TRY(found, v.resolve(req.nickname, std::nullopt));
  const uint32_t number = found.second->info.number;
  auto allowed = [&](const Generation& g) -> Result<void> {
    if (v.m.header.policy.export_rule == ExportRule::kNever)
      return fail(Code::kRefused, "the policy of " + v.where() +
                                      " forbids export; `certvault policy set --export once` "
                                      "allows one export per generation");
    if (g.exported_at)
      return fail(Code::kRefused, "'" + nick + "' (generation " + std::to_string(g.number) +
                                      ") was already exported on " + format_time(g.exported_at) +
                                      "; each generation is exported once. Run `certvault "
                                      "rotate " +
                                      nick +
                                      "` for a new key and certificate, "
                                      "then export that");
    return {};
  };
  CV_CHECK(allowed(found.second->info));
  CV_TRY(o, v.object(*found.first, *found.second));
  CV_TRY(cert, ossl::cert_from_der(o.certificate));
  CV_TRY(key, v.open_key(o));
  ossl::CertStack chain(sk_X509_new_null());
  if (req.chain)
    for (const auto& der : o.chain) {
      CV_TRY(c, ossl::cert_from_der(der));
      sk_X509_push(chain.get(), c.release());
    }
  SecureBytes password = pkcs12::new_password();
  CV_TRY(p12, pkcs12::build(key.get(), cert.get(), chain.get(), password, req.encryption, nick));
  CV_CHECK(stage(p12));
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    auto* e = find_entry(m, req.nickname);
    manifest::GenRecord* g = nullptr;
    if (e)
      for (auto& r : e->gens)
        if (r.info.number == number) g = &r;
    if (!e || !g || g->info.status != Status::kActive)
      return fail(Code::kRefused, "'" + nick + "' changed meanwhile; run the export again");
    CV_CHECK(allowed(g->info));
    g->info.exported_at = now();
    return {};
  }));
  return std::pair{std::move(p12), std::move(password)};
}

}  // namespace

Result<SecureBytes> Vault::export_pkcs12(const ExportRequest& req) {
  // Written beside the target before the export is recorded, moved into place after: the
  // export is never recorded without a file, nor a file left without the record.
  auto tmp = req.out;
  tmp += ".certvault-partial";
  auto made = export_recorded(*impl_, req, [&](const ossl::Bytes& p12) -> Result<void> {
    std::error_code ec;
    if (std::filesystem::exists(req.out, ec) || std::filesystem::is_symlink(req.out, ec))
      return fail(Code::kExists,
                  req.out.string() + " already exists; choose a new file name for the export");
    ::unlink(tmp.c_str());
    return raw::write_new(tmp, p12);
  });
  if (!made) {
    ::unlink(tmp.c_str());
    return std::unexpected(made.error());
  }
  if (::link(tmp.c_str(), req.out.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return fail(Code::kIo, "cannot create " + req.out.string() + ": " + raw::errno_text(err) +
                               "; the export was recorded, so rotate to export again");
  }
  ::unlink(tmp.c_str());
  if (req.out.has_parent_path()) (void)raw::fsync_dir(req.out.parent_path());
  return std::move(made->second);
}

Result<std::pair<std::vector<uint8_t>, SecureBytes>> Vault::export_pkcs12_bytes(
    const ExportRequest& req) {
  return export_recorded(*impl_, req, [](const ossl::Bytes&) -> Result<void> { return {}; });
}

}  // namespace certvault

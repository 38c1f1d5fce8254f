#include "owner_ops.h"

#include <syslog.h>

#include "acme_client.h"
#include "cmp_client.h"
#include "owner_request.h"
#include "renewal_pass.h"
#include "revoke.h"

namespace certvault::agent {
namespace {

namespace owner = cli::owner;

std::span<const uint8_t> bytes_of(std::string_view v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size()};
}

Frame done(const std::string& op, const std::string& nickname) {
  Json::Value v(Json::objectValue);
  v["op"] = op;
  if (!nickname.empty()) v["nickname"] = nickname;
  Frame f(Type::kOk);
  f.add(Tag::kJson, owner::compact(v));
  return f;
}

}  // namespace

Result<Frame> carry_out_owner_op(Vault& vault, const Message& m, AuditEvent& ev,
                                 std::vector<cli::AfterChange>& hooks, cli::AriCache* ari) {
  CV_TRY(args, owner::parse(m.text(Tag::kJson)));
  const std::string op = args["op"].isString() ? args["op"].asString() : "";
  ev.action = "owner:" + op;
  if (!owner::known_op(op))
    return fail(Code::kInvalidInput, "'" + op + "' is not an operation the agent carries out");
  if (args["nickname"].isString()) ev.nickname = args["nickname"].asString();
  const std::string_view data = m.get(Tag::kData).value_or(std::string_view());

  if (op == "create") {
    CV_TRY(request, owner::issue_request(args));
    CV_TRY(entry, vault.create(request));
    return done(op, entry.nickname);
  }
  if (op == "rotate") {
    CV_TRY(nickname, owner::nickname(args));
    CV_TRY(not_after, owner::optional_time(args, "not_after"));
    CV_TRY(entry, vault.rotate(nickname, not_after));
    if (auto after = cli::after_change_for(vault, entry)) hooks.push_back(std::move(*after));
    return done(op, entry.nickname);
  }
  if (op == "disable" || op == "enable") {
    CV_TRY(nickname, owner::nickname(args));
    CV_TRY(entry, op == "disable" ? vault.disable(nickname) : vault.enable(nickname));
    return done(op, entry.nickname);
  }
  if (op == "revoke") {
    CV_TRY(request, owner::revoke_request(args));
    CV_TRY(entry,
           cli::revoke_generation(vault, request.nickname, request.generation, request.reason));
    return done(op, entry.nickname);
  }
  if (op == "delete") {
    CV_TRY(nickname, owner::nickname(args));
    CV_CHECK(vault.remove(nickname));
    return done(op, nickname);
  }
  if (op == "export") {
    CV_TRY(request, owner::export_request(args));
    CV_TRY(made, vault.export_pkcs12_bytes(request));
    Frame f = done(op, request.nickname);
    f.add(Tag::kData, made.first);
    f.add(Tag::kPassword, made.second.span());
    return f;
  }
  if (op == "import") {
    CV_TRY(nickname, owner::nickname(args));
    // PKCS#12 with its password (which may be empty), or PEM: as the CLI decided.
    const auto password = m.get(Tag::kPassword).value_or(std::string_view());
    Result<Entry> imported =
        args["pkcs12"].asBool() ? vault.import_pkcs12(nickname, bytes_of(data),
                                                      SecureBytes(password.data(), password.size()))
                                : vault.import_pem(nickname, data);
    if (!imported) return std::unexpected(imported.error());
    return done(op, imported->nickname);
  }
  if (op == "attach") {
    CV_TRY(nickname, owner::nickname(args));
    CV_TRY(entry, vault.attach(nickname, data));
    if (auto after = cli::after_change_for(vault, entry)) hooks.push_back(std::move(*after));
    return done(op, entry.nickname);
  }
  if (op == "csr") {
    CV_TRY(request, owner::csr_request(args));
    CV_TRY(pem, vault.make_csr(request));
    Frame f = done(op, request.nickname);
    f.add(Tag::kData, pem);
    return f;
  }
  if (op == "ca-create") {
    CV_TRY(request, owner::ca_request(args));
    CV_TRY(ca, vault.create_ca(request));
    (void)ca;
    return done(op, "");
  }
  if (op == "ca-crl") {
    // The CRL goes back to the CLI, which writes the file in its own context.
    CV_TRY(request, owner::crl_request(args));
    CV_TRY(pem, vault.make_crl(request.next_update, request.file));
    Frame f = done(op, "");
    f.add(Tag::kData, pem);
    return f;
  }
  if (op == "policy-set") {
    CV_TRY(change, owner::policy_change(args));
    CV_TRY(policy, vault.update_policy([&](Policy& p) { change.apply(p); }));
    (void)policy;
    return done(op, "");
  }
  if (op == "renew-rule") {
    CV_TRY(change, owner::renew_rule_change(args));
    CV_TRY(entry, vault.update_renewal(change.nickname,
                                       [&](Vault::RenewalSettings& s) { change.apply(s); }));
    return done(op, entry.nickname);
  }
  if (op == "publish") {
    CV_TRY(nickname, owner::nickname(args));
    CV_TRY(targets, owner::publish_targets(args));
    CV_TRY(entry, vault.set_publish(nickname, targets));
    return done(op, entry.nickname);
  }
  if (op == "renew") {
    CV_TRY(nicknames, owner::renew_nicknames(args));
    cli::PassRequest request;
    request.nicknames = std::move(nicknames);
    request.revoke_old = owner::renew_revoke_old(args);
    request.ari = ari;
    CV_TRY(pass, cli::renewal_pass(vault, request));
    for (const auto& o : pass.outcomes) {
      if (o.after) hooks.push_back(*o.after);
      // The renewal stands; the caller sees the sentence, the journal keeps it.
      if (o.revoke_failed)
        Audit::journal(LOG_WARNING, "renewed '" + o.nickname + "'; " + o.revoked_old,
                       vault.label());
    }
    Frame f = done(op, "");
    f.add(Tag::kData, owner::compact(cli::to_json(pass)));
    return f;
  }
  if (op == "issuer-add") {
    CV_TRY(issuer, owner::outside_issuer(args));
    ev.nickname = issuer.name;
    std::optional<SecureBytes> secret;
    if (auto s = m.get(Tag::kPassword)) secret.emplace(s->data(), s->size());
    CV_TRY(added, vault.add_issuer(issuer, secret ? &*secret : nullptr));
    (void)added;
    return done(op, "");
  }
  if (op == "issuer-remove") {
    CV_TRY(name, owner::issuer_name(args));
    ev.nickname = name;
    CV_CHECK(vault.remove_issuer(name));
    return done(op, "");
  }
  if (op == "enroll") {
    // The protocol exchange runs here, in the process that holds the vault unlocked.
    CV_TRY(request, owner::enrollment_request(args));
    const auto issuer = vault.find_issuer(request.issuer);
    const bool acme = issuer && issuer->protocol == IssuerProtocol::kAcme;
    CV_TRY(entry, acme ? cli::acme_enroll(vault, request) : cli::cmp_enroll(vault, request));
    return done(op, entry.nickname);
  }
  // policy-clear
  CV_CHECK(vault.set_policy(Policy{}));
  return done(op, "");
}

}  // namespace certvault::agent

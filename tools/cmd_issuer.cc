// issuer add | list | show | remove: outside CAs the vault enrolls from by CMP or ACME, and
// create --issuer (docs/lifecycle.md, "Outside CAs: CMP" and "... ACME"). Adding and removing an
// issuer and enrolling are done by the agent when it holds the vault unlocked, else in this
// process with the PIN.
#include <openssl/x509.h>

#include <iostream>

#include "acme_client.h"
#include "cmp_client.h"
#include "commands.h"
#include "files.h"
#include "ossl.h"
#include "output.h"
#include "owner.h"
#include "owner_request.h"
#include "report.h"
#include "secret_input.h"

namespace certvault::cli {
namespace {

// The subject and end of a certificate, for people.
std::string anchor_text(const std::vector<uint8_t>& der, Json::Value* json) {
  const unsigned char* p = der.data();
  ossl::Cert cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!cert) return "(not a certificate)";
  std::string subject = ossl::to_text([&](BIO* b) {
    X509_NAME_print_ex(b, X509_get_subject_name(cert.get()), 0, XN_FLAG_RFC2253);
  });
  std::string until =
      ossl::to_text([&](BIO* b) { ASN1_TIME_print(b, X509_get0_notAfter(cert.get())); });
  if (json) {
    Json::Value v(Json::objectValue);
    v["subject"] = subject;
    v["not_after"] = until;
    json->append(v);
  }
  return subject + ", until " + until;
}

// The challenges certvault answers for an ACME issuer, in the order it prefers them
// (acme_client.cc, choose_challenge).
Json::Value challenges_of(const OutsideIssuer& i) {
  Json::Value out(Json::arrayValue);
  if (!i.dns01_hook.empty()) out.append("dns-01");
  if (!i.http01_listen.empty()) out.append("http-01");
  return out;
}

std::vector<std::string> users_of(const Vault& vault, const std::string& name) {
  std::vector<std::string> out;
  for (const Entry& e : vault.entries())
    if (e.issuer == name) out.push_back(e.nickname);
  return out;
}

void print_issuer(const Globals& globals, const Vault& vault, const OutsideIssuer& i,
                  const std::string& headline) {
  Json::Value trust(Json::arrayValue), server_ca(Json::arrayValue);
  std::string anchors, server;
  for (const auto& der : i.trust)
    anchors += (anchors.empty() ? "" : "; ") + anchor_text(der, &trust);
  for (const auto& der : i.server_ca)
    server += (server.empty() ? "" : "; ") + anchor_text(der, &server_ca);
  const auto users = users_of(vault, i.name);
  const bool acme = i.protocol == IssuerProtocol::kAcme;
  if (globals.json) {
    Json::Value out(Json::objectValue);
    out["name"] = i.name;
    out["protocol"] = acme ? "acme" : "cmp";
    out["url"] = i.url;
    out["authentication"] = acme ? "account" : i.has_secret ? "secret" : "certificate";
    if (acme) {
      out["account"] = i.account.empty() ? Json::Value() : Json::Value(i.account);
      out["http01_listen"] = i.http01_listen.empty() ? Json::Value() : Json::Value(i.http01_listen);
      out["dns01_hook"] = i.dns01_hook.empty() ? Json::Value() : Json::Value(i.dns01_hook);
      out["challenges"] = challenges_of(i);
      out["eab_kid"] = i.eab_kid.empty() ? Json::Value() : Json::Value(i.eab_kid);
    }
    out["reference"] = i.reference.empty() ? Json::Value() : Json::Value(i.reference);
    out["client_cert"] = i.client_cert.empty() ? Json::Value() : Json::Value(i.client_cert);
    out["trust"] = trust;
    out["server_ca"] = server_ca;
    Json::Value entries(Json::arrayValue);
    for (const auto& n : users) entries.append(n);
    out["entries"] = entries;
    print_json(out);
    return;
  }
  if (!headline.empty()) std::cout << headline << '\n';
  std::string entries;
  for (const auto& n : users) entries += (entries.empty() ? "'" : ", '") + n + "'";
  if (acme) {
    print_fields({{"Issuer", i.name},
                  {"Protocol", "ACME"},
                  {"Directory", i.url},
                  {"Account", i.account.empty() ? "not registered yet (on first use)" : i.account},
                  {"http-01 responder", i.http01_listen.empty() ? "none" : i.http01_listen},
                  {"dns-01 hook", i.dns01_hook.empty() ? "none" : i.dns01_hook},
                  {"External account", i.eab_kid.empty() ? "none" : "key id '" + i.eab_kid + "'"},
                  {"Renewals", "a new order for the same names, with a new key"},
                  {"Trust anchor", anchors},
                  {"TLS server CA", server.empty() ? "the system's" : server},
                  {"Entries", entries.empty() ? "none" : entries}});
    return;
  }
  print_fields({{"Issuer", i.name},
                {"Protocol", "CMP"},
                {"Server", i.url},
                {"Initial requests", i.has_secret ? "shared secret, reference '" + i.reference + "'"
                                                  : "certificate of '" + i.client_cert + "'"},
                {"Renewals", "key update, signed with the entry's current key"},
                {"Trust anchor", anchors},
                {"TLS server CA", server.empty() ? "none" : server},
                {"Entries", entries.empty() ? "none" : entries}});
}

}  // namespace

Outcome cmd_issuer_add(const Globals& globals, const IssuerAddArgs& args) {
  CV_CHECK(check_nickname(args.name));
  if (args.cmp_url.empty() == args.acme_url.empty())
    return invalid("give either --cmp URL (a CMP server) or --acme URL (an ACME directory)");
  const bool acme = !args.acme_url.empty();
  if (acme && (!args.cmp_ref.empty() || !args.cmp_secret_file.empty() || !args.cmp_cert.empty()))
    return invalid(
        "--cmp-ref, --cmp-secret-file and --cmp-cert go with --cmp; an ACME issuer "
        "authenticates with an account key the vault makes");
  if (!acme && (!args.http01_listen.empty() || !args.dns01_hook.empty() || !args.eab.empty()))
    return invalid("--http01-listen, --dns01-hook and --eab go with --acme");
  std::string eab_kid, eab_file;
  if (!args.eab.empty()) {
    const auto colon = args.eab.find(':');
    if (colon == 0 || colon == std::string::npos || colon + 1 == args.eab.size())
      return invalid("--eab is KID:FILE, the key id the CA gave and a file holding its MAC key");
    eab_kid = args.eab.substr(0, colon);
    eab_file = args.eab.substr(colon + 1);
  }
  if (!acme && !args.cmp_secret_file.empty() == !args.cmp_cert.empty())
    return invalid(
        "give either --cmp-ref REF with --cmp-secret-file FILE (a shared secret) or "
        "--cmp-cert NICKNAME (a certificate in the vault) to authenticate initial requests");
  if (!args.cmp_secret_file.empty() && args.cmp_ref.empty())
    return invalid("--cmp-secret-file needs --cmp-ref REF, the reference the CA gave with it");
  if (!args.cmp_cert.empty() && !args.cmp_ref.empty())
    return invalid("--cmp-ref goes with --cmp-secret-file, not with --cmp-cert");
  CV_CHECK(
      check_stdin_once("--pin-file", globals.pin_file, "--cmp-secret-file", args.cmp_secret_file));
  OutsideIssuer issuer;
  issuer.name = args.name;
  issuer.protocol = acme ? IssuerProtocol::kAcme : IssuerProtocol::kCmp;
  issuer.url = acme ? args.acme_url : args.cmp_url;
  issuer.http01_listen = args.http01_listen;
  issuer.dns01_hook = args.dns01_hook;
  issuer.eab_kid = eab_kid;
  issuer.reference = args.cmp_ref;
  issuer.client_cert = args.cmp_cert;
  CV_TRY(trust_pem, read_text_file(args.trust, "trust anchor file"));
  CV_TRY(trust, certificates_in(trust_pem, "--trust " + args.trust));
  issuer.trust = std::move(trust);
  if (!args.server_ca.empty()) {
    CV_TRY(server_pem, read_text_file(args.server_ca, "server CA file"));
    CV_TRY(server_ca, certificates_in(server_pem, "--server-ca " + args.server_ca));
    issuer.server_ca = std::move(server_ca);
  }
  if (!acme && issuer.url.starts_with("https://") && issuer.server_ca.empty())
    return invalid(
        "an https CMP server needs --server-ca FILE, the CA its TLS certificate "
        "chains to");
  std::optional<SecureBytes> secret;
  if (!eab_file.empty()) {
    CV_CHECK(check_stdin_once("--pin-file", globals.pin_file, "--eab", eab_file));
    CV_TRY(read, read_pin(eab_file, "", {"ACME external account MAC key", "--eab"}));
    secret = std::move(read);
  }
  if (!args.cmp_secret_file.empty()) {
    CV_TRY(read, read_pin(args.cmp_secret_file, "", {"CMP shared secret", "--cmp-secret-file"}));
    secret = std::move(read);
  }
  CV_TRY(vault, open_vault(globals));
  OwnerRequest request("issuer-add", owner::to_json(issuer));
  if (secret) request.password = &*secret;
  CV_TRY(reply, ask_agent(globals, vault, request));
  std::optional<OutsideIssuer> found;
  if (reply) {
    CV_CHECK(vault.refresh());
    found = vault.find_issuer(issuer.name);
    if (!found)
      return fail(Code::kNotFound, "the agent added issuer '" + issuer.name +
                                       "', but it has gone from vault '" + vault.label() +
                                       "' since");
  } else {
    CV_CHECK(unlock_here(globals, vault));
    CV_TRY(made, vault.add_issuer(issuer, secret ? &*secret : nullptr));
    found = std::move(made);
  }
  const OutsideIssuer& added = *found;
  print_issuer(globals, vault, added,
               "Added issuer '" + added.name + "' to vault '" + vault.label() + "'.");
  return kExitOk;
}

Outcome cmd_issuer_list(const Globals& globals) {
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(vault.refresh());
  const auto issuers = vault.issuers();
  if (globals.json) {
    Json::Value out(Json::arrayValue);
    for (const auto& i : issuers) {
      Json::Value v(Json::objectValue);
      v["name"] = i.name;
      const bool acme = i.protocol == IssuerProtocol::kAcme;
      v["protocol"] = acme ? "acme" : "cmp";
      v["url"] = i.url;
      v["authentication"] = acme ? "account" : i.has_secret ? "secret" : "certificate";
      if (acme) v["challenges"] = challenges_of(i);
      v["entries"] = Json::UInt64(users_of(vault, i.name).size());
      out.append(v);
    }
    print_json(out);
    return kExitOk;
  }
  if (issuers.empty()) {
    std::cout << "Vault '" << vault.label()
              << "' has no outside issuer; add one with `certvault issuer add NAME --cmp URL "
                 "...`.\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows{{"NAME", "PROTOCOL", "SERVER", "AUTH", "ENTRIES"}};
  for (const auto& i : issuers)
    rows.push_back({i.name, i.protocol == IssuerProtocol::kAcme ? "acme" : "cmp", i.url,
                    i.protocol == IssuerProtocol::kAcme ? "account"
                    : i.has_secret                      ? "secret"
                                                        : "certificate",
                    std::to_string(users_of(vault, i.name).size())});
  print_table(rows);
  return kExitOk;
}

Outcome cmd_issuer_show(const Globals& globals, const std::string& name) {
  CV_CHECK(check_nickname(name));
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(vault.refresh());
  auto issuer = vault.find_issuer(name);
  if (!issuer)
    return fail(Code::kNotFound, "no issuer named '" + name + "' in vault '" + vault.label() +
                                     "'; `certvault issuer list` shows them");
  print_issuer(globals, vault, *issuer, "");
  return kExitOk;
}

Outcome cmd_issuer_remove(const Globals& globals, const std::string& name) {
  CV_CHECK(check_nickname(name));
  CV_TRY(vault, open_vault(globals));
  CV_TRY(reply, ask_agent(globals, vault, {"issuer-remove", owner::issuer_name_json(name)}));
  if (!reply) {
    CV_CHECK(unlock_here(globals, vault));
    CV_CHECK(vault.remove_issuer(name));
  }
  if (globals.json) {
    Json::Value out(Json::objectValue);
    out["removed"] = name;
    print_json(out);
  } else {
    std::cout << "Removed issuer '" << name << "' from vault '" << vault.label() << "'.\n";
  }
  return kExitOk;
}

Outcome cmd_create_from_issuer(const Globals& globals, const CreateArgs& args) {
  if (args.self_signed) return invalid("give --issuer or --self-signed, not both");
  if (args.hash)
    return invalid("--hash does not apply with --issuer: the outside CA chooses how it signs");
  EnrollmentRequest request;
  request.nickname = args.nickname;
  request.issuer = args.issuer;
  CV_CHECK(check_nickname(request.nickname));
  CV_CHECK(check_nickname(request.issuer));
  CV_TRY(not_after,
         parse_optional_date(args.end_date.empty() ? std::optional<std::string>()
                                                   : std::optional<std::string>(args.end_date)));
  CV_TRY(key_type, parse_optional_key_type(args.key_type));
  request.not_after = not_after;
  request.key_type = key_type;
  request.subject = args.subject;
  request.alt_names = args.san;
  CV_TRY(vault, open_vault(globals));
  const auto issuer = vault.find_issuer(request.issuer);
  const bool acme = issuer && issuer->protocol == IssuerProtocol::kAcme;
  if (acme && request.not_after)
    return invalid("--end-date does not apply with ACME issuer '" + request.issuer +
                   "': the CA decides the lifetime (the policy's limits still apply)");
  CV_TRY(entry, change_entry_via_agent_or_here(
                    globals, vault, {"enroll", owner::to_json(request)}, [&](Vault& here) {
                      return acme ? acme_enroll(here, request) : cmp_enroll(here, request);
                    }));
  const Generation* g = entry.current();
  report_entry(globals, vault, entry,
               "Enrolled '" + entry.nickname + "' at issuer '" + request.issuer + "'" +
                   (g ? " (generation " + std::to_string(g->number) + ")." : "."));
  return kExitOk;
}

}  // namespace certvault::cli

#include "report.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "output.h"
#include "renewal.h"
#include "revoke.h"
#include "uri.h"

namespace certvault::cli {
namespace {

constexpr int64_t kDay = 86400;

Json::Value time_json(Time t) {
  return t == 0 ? Json::Value() : Json::Value(format_time(t));
}

std::string time_text(Time t, std::string_view when_zero) {
  return t == 0 ? std::string(when_zero) : format_time(t);
}

std::string sv(std::string_view text) {
  return std::string(text);
}

bool is_default_vault(const Vault& vault) {
  std::error_code ec;
  auto here = std::filesystem::weakly_canonical(vault.dir(), ec);
  if (ec) return false;
  auto fallback = std::filesystem::weakly_canonical(default_vault_dir(), ec);
  return !ec && here == fallback;
}

Json::Value generation_json(const Generation& g, Time now) {
  Json::Value out(Json::objectValue);
  out["number"] = Json::UInt(g.number);
  out["status"] = sv(to_string(g.status));
  out["key_type"] = sv(to_string(g.key_type));
  out["hash"] = sv(to_string(g.hash));
  out["issuer"] = sv(to_string(g.issuer));
  out["key_id"] = g.key_id;
  out["fingerprint"] = g.fingerprint;
  out["serial"] = g.serial;
  out["subject"] = g.subject;
  out["issuer_name"] = g.issuer_name;
  out["not_before"] = time_json(g.not_before);
  out["not_after"] = time_json(g.not_after);
  out["created_at"] = time_json(g.created_at);
  out["exported_at"] = time_json(g.exported_at);
  out["exported"] = g.exported_at != 0;
  if (g.not_after != 0) {
    out["days_left"] = Json::Int64(days_left(g.not_after, now));
    out["expired"] = expired(g.not_after, now);
  }
  return out;
}

std::vector<std::string> generation_row(const Generation& g, Time now) {
  bool has_cert = g.not_after != 0;
  return {"#" + std::to_string(g.number), sv(to_string(g.status)),
          has_cert ? format_date(g.not_after) : "-",
          has_cert ? expiry_phrase(g.not_after, now) : "waiting for its certificate",
          has_cert ? g.serial : "-"};
}

Fields generation_fields(const Generation& g, Time now) {
  Fields fields;
  if (g.not_after == 0) {
    fields.emplace_back("Expires", "no certificate yet");
  } else {
    fields.emplace_back("Expires",
                        format_time(g.not_after) + " (" + expiry_phrase(g.not_after, now) + ")");
    fields.emplace_back("Valid from", format_time(g.not_before));
  }
  fields.emplace_back("Subject", g.subject);
  if (!g.issuer_name.empty()) {
    fields.emplace_back("Issuer", g.issuer_name + " (" + sv(to_string(g.issuer)) + ")");
  }
  fields.emplace_back("Key type", sv(to_string(g.key_type)));
  fields.emplace_back("Hash", sv(to_string(g.hash)));
  if (!g.serial.empty()) fields.emplace_back("Serial", g.serial);
  fields.emplace_back("Key id", g.key_id);
  if (!g.fingerprint.empty()) fields.emplace_back("Fingerprint", "SHA256 " + g.fingerprint);
  fields.emplace_back("Created", format_time(g.created_at));
  fields.emplace_back("Exported", time_text(g.exported_at, "never"));
  return fields;
}

std::string status_text(const Entry& entry) {
  const Generation* g = shown_generation(entry);
  if (g == nullptr) return "empty";
  std::string text = sv(to_string(g->status)) + " (generation " + std::to_string(g->number) +
                     " of " + std::to_string(entry.generations.size()) + ")";
  if (g->status == Status::kPending) {
    text += "; attach the CA's certificate: certvault attach " + entry.nickname + " CERT.pem";
  }
  return text;
}

// Programs run from elsewhere: a relative --vault would point them at the wrong place.
std::string absolute_dir(const Vault& vault) {
  std::error_code ec;
  auto dir = std::filesystem::absolute(vault.dir(), ec);
  return (ec ? vault.dir() : dir).string();
}

void print_uris(const Entry& entry, const Vault& vault) {
  std::cout << "\nURIs for programs:\n";
  // With type=, ready to paste where a program takes a certificate and a key (gnutls-cli,
  // wget, curl through libp11).
  const std::string p11 = pkcs11_uri(vault.label(), entry.nickname);
  print_fields({{"OpenSSL (provider)", certvault_uri(entry.nickname)},
                {"PKCS#11 certificate", p11 + ";type=cert"},
                {"PKCS#11 private key", p11 + ";type=private"}},
               "  ");
  if (!is_default_vault(vault)) {
    std::string dir = absolute_dir(vault);
    std::cout << "  This vault is not the default one: set CERTVAULT_VAULT=" << dir << " or use "
              << certvault_uri(entry.nickname) << vault_query(dir) << '\n';
  }
}

std::string renewer_text(Renewer r) {
  switch (r) {
    case Renewer::kVaultCa:
      return "by the vault CA";
    case Renewer::kSelfSigned:
      return "self-signed";
    case Renewer::kCmp:
      return "by its outside CA (CMP)";
    case Renewer::kAcme:
      return "by its outside CA (ACME)";
    case Renewer::kByHand:
      return "by hand (csr, then attach)";
  }
  return "";
}

// The Renewal field of `show`: the rule, where it comes from, and when and how it renews.
std::string renewal_text(const RenewalPlan& plan) {
  std::string text = rule_text(plan.rule);
  if (plan.from_policy) text += " (vault policy)";
  if (plan.due) text += "; due " + format_time(*plan.due) + ", " + renewer_text(plan.renewer);
  return text;
}

std::string failures_text(const RenewalState& r, const std::optional<Time>& retry_at) {
  std::string text = "failed " + std::to_string(r.failures) +
                     (r.failures == 1 ? " time" : " times") + ", last " +
                     format_time(r.last_failure) + ": " + r.last_error;
  if (retry_at) text += "; next try after " + format_time(*retry_at);
  return text;
}

}  // namespace

int64_t days_left(Time not_after, Time now) {
  int64_t remaining = not_after - now;
  // Rounds toward +infinity for both signs.
  return remaining > 0 ? (remaining + kDay - 1) / kDay : -(-remaining / kDay);
}

bool expired(Time not_after, Time now) {
  return not_after <= now;
}

bool expires_within(const Entry& entry, Time now, int64_t window) {
  const Generation* g = entry.current();
  return g != nullptr && g->not_after - now <= window;
}

std::string expiry_phrase(Time not_after, Time now) {
  if (expired(not_after, now)) return "expired";
  int64_t days = days_left(not_after, now);
  return "expires in " + std::to_string(days) + (days == 1 ? " day" : " days");
}

const Generation* shown_generation(const Entry& entry) {
  const Generation* current = entry.current();
  return current != nullptr ? current : entry.newest();
}

Status entry_status(const Entry& entry) {
  const Generation* g = shown_generation(entry);
  return g != nullptr ? g->status : Status::kPending;
}

Json::Value entry_json(const Entry& entry, const Vault& vault, Time now) {
  Json::Value out(Json::objectValue);
  out["id"] = entry.id;
  out["nickname"] = entry.nickname;
  out["status"] = sv(to_string(entry_status(entry)));
  const Generation* current = entry.current();
  out["current_generation"] =
      current != nullptr ? Json::Value(Json::UInt(current->number)) : Json::Value();
  out["certvault_uri"] = certvault_uri(entry.nickname);
  out["pkcs11_uri"] = pkcs11_uri(vault.label(), entry.nickname);
  out["pkcs11_cert_uri"] = out["pkcs11_uri"].asString() + ";type=cert";
  out["pkcs11_key_uri"] = out["pkcs11_uri"].asString() + ";type=private";
  out["outside_issuer"] = entry.issuer.empty() ? Json::Value() : Json::Value(entry.issuer);
  if (!is_default_vault(vault)) {
    out["certvault_uri_with_vault"] =
        certvault_uri(entry.nickname) + vault_query(absolute_dir(vault));
  }
  Json::Value generations(Json::arrayValue);
  for (const auto& g : entry.generations) generations.append(generation_json(g, now));
  out["generations"] = generations;
  out["renewal"] = renewal_json(entry, vault.policy(), vault.issuers());
  Json::Value revoked(Json::arrayValue);
  for (const Revocation& r : entry.revoked) {
    Json::Value x(Json::objectValue);
    x["generation"] = Json::UInt(r.generation);
    x["serial"] = r.serial;
    x["reason"] = sv(to_string(r.reason));
    x["at"] = time_json(r.at);
    const std::string issuer = revoking_issuer(entry, r.generation);
    x["outside_issuer"] = issuer.empty() ? Json::Value() : Json::Value(issuer);
    revoked.append(x);
  }
  out["revoked"] = revoked;
  return out;
}

Json::Value renewal_json(const Entry& entry, const Policy& policy,
                         std::span<const OutsideIssuer> issuers) {
  Json::Value out(Json::objectValue);
  const RenewRule rule = entry.renew_rule.value_or(policy.renew);
  out["rule"] = rule_spec(rule);
  out["rule_text"] = rule_text(rule);
  out["from_policy"] = !entry.renew_rule;
  out["then"] = entry.renew_hook.empty() ? Json::Value() : Json::Value(entry.renew_hook);
  const auto plan = plan_renewal(entry, policy, issuers);
  out["due"] = plan && plan->due ? time_json(*plan->due) : Json::Value();
  out["renewer"] = plan ? sv(to_string(plan->renewer)) : Json::Value();
  out["failures"] = Json::UInt(entry.renewal.failures);
  out["failures_total"] = Json::UInt64(entry.renewal.failures_total);
  out["last_failure"] = time_json(entry.renewal.last_failure);
  out["last_error"] =
      entry.renewal.last_error.empty() ? Json::Value() : Json::Value(entry.renewal.last_error);
  out["retry_at"] = plan && plan->retry_at ? time_json(*plan->retry_at) : Json::Value();
  return out;
}

Json::Value ca_json(const CaInfo& ca, Time now) {
  Json::Value out(Json::objectValue);
  out["id"] = ca.id;
  out["active"] = ca.active;
  out["subject"] = ca.subject;
  out["key_type"] = sv(to_string(ca.key_type));
  out["key_id"] = ca.key_id;
  out["fingerprint"] = ca.fingerprint;
  out["serial"] = ca.serial;
  out["not_before"] = time_json(ca.not_before);
  out["not_after"] = time_json(ca.not_after);
  out["days_left"] = Json::Int64(days_left(ca.not_after, now));
  out["expired"] = expired(ca.not_after, now);
  return out;
}

Json::Value policy_json(const Policy& policy) {
  Json::Value out(Json::objectValue);
  out["max_end_date"] = policy.max_end_date ? time_json(*policy.max_end_date) : Json::Value();
  out["default_key_type"] = sv(to_string(policy.default_key_type));
  out["default_hash"] = sv(to_string(policy.default_hash));
  out["export"] = sv(to_string(policy.export_rule));
  out["renew"] = rule_spec(policy.renew);
  out["max_lifetime"] =
      policy.max_lifetime ? Json::Value(format_period(*policy.max_lifetime)) : Json::Value();
  out["min_pin_length"] = Json::UInt(policy.min_pin_length);
  return out;
}

void print_entry(const Entry& entry, const Vault& vault, Time now) {
  Fields fields{{"Nickname", entry.nickname}, {"Status", status_text(entry)}};
  if (const Generation* g = shown_generation(entry)) {
    auto more = generation_fields(*g, now);
    fields.insert(fields.end(), more.begin(), more.end());
  }
  const auto issuers = vault.issuers();
  if (!entry.issuer.empty()) {
    const bool acme = std::any_of(issuers.begin(), issuers.end(), [&](const OutsideIssuer& i) {
      return i.name == entry.issuer && i.protocol == IssuerProtocol::kAcme;
    });
    fields.emplace_back("Outside issuer", entry.issuer + (acme ? " (ACME)" : " (CMP)"));
  }
  const auto plan = plan_renewal(entry, vault.policy(), issuers);
  if (plan) fields.emplace_back("Renewal", renewal_text(*plan));
  if (!entry.renew_hook.empty()) fields.emplace_back("Then", entry.renew_hook);
  if (entry.renewal.failures > 0)
    fields.emplace_back("Renewals",
                        failures_text(entry.renewal, plan ? plan->retry_at : std::nullopt));
  for (const Revocation& r : entry.revoked) {
    const std::string issuer = revoking_issuer(entry, r.generation);
    fields.emplace_back(
        "Revoked", "generation " + std::to_string(r.generation) + " on " + format_time(r.at) +
                       " (" + sv(to_string(r.reason)) + ") by " +
                       (issuer.empty() ? "the vault CA, for its CRL" : "issuer '" + issuer + "'"));
  }
  fields.emplace_back("Entry id", entry.id);
  print_fields(fields);
  print_uris(entry, vault);
  if (entry.generations.size() > 1) {
    std::cout << "\nGenerations:\n";
    std::vector<std::vector<std::string>> rows{{"#", "STATUS", "NOT AFTER", "DAYS LEFT", "SERIAL"}};
    for (const auto& g : entry.generations) rows.push_back(generation_row(g, now));
    print_table(rows, "  ");
  }
}

void print_entry_table(const std::vector<Entry>& entries, const Policy& policy, Time now) {
  std::vector<std::vector<std::string>> rows{
      {"NICKNAME", "STATUS", "KEY TYPE", "NOT AFTER", "DAYS LEFT", "RENEWAL DUE"}};
  for (const auto& entry : entries) {
    const Generation* g = shown_generation(entry);
    bool has_cert = g != nullptr && g->not_after != 0;
    const auto plan = plan_renewal(entry, policy);
    std::string renewal = "-";
    if (plan && plan->due)
      renewal = format_date(*plan->due) + (plan->renewer == Renewer::kByHand ? " (by hand)" : "");
    else if (plan)
      renewal = "off";
    rows.push_back({entry.nickname, sv(to_string(entry_status(entry))),
                    g != nullptr ? sv(to_string(g->key_type)) : "-",
                    has_cert ? format_date(g->not_after) : "-",
                    has_cert ? expiry_phrase(g->not_after, now) : "-", renewal});
  }
  print_table(rows);
}

void print_ca(const CaInfo& ca, Time now) {
  print_fields(
      {{"Subject", ca.subject},
       {"Status", ca.active ? "active" : "retired"},
       {"Expires", format_time(ca.not_after) + " (" + expiry_phrase(ca.not_after, now) + ")"},
       {"Valid from", format_time(ca.not_before)},
       {"Key type", sv(to_string(ca.key_type))},
       {"Serial", ca.serial},
       {"Key id", ca.key_id},
       {"Fingerprint", "SHA256 " + ca.fingerprint},
       {"CA id", ca.id}});
}

void print_policy(const Policy& policy) {
  print_fields(
      {{"Latest end date",
        policy.max_end_date ? format_date(*policy.max_end_date) : "none (any date the CA allows)"},
       {"Default key type", sv(to_string(policy.default_key_type))},
       {"Default hash", sv(to_string(policy.default_hash))},
       {"Export", policy.export_rule == ExportRule::kOnce ? "once per generation" : "never"},
       {"Renewal", rule_text(policy.renew) + " (for entries without a rule of their own)"},
       {"Maximum lifetime", policy.max_lifetime ? format_period(*policy.max_lifetime) : "none"},
       {"Minimum PIN length", std::to_string(policy.min_pin_length)}});
}

void report_entry(const Globals& globals, const Vault& vault, const Entry& entry,
                  std::string_view headline) {
  Time t = now();
  if (globals.json) return print_json(entry_json(entry, vault, t));
  std::cout << headline << "\n\n";
  print_entry(entry, vault, t);
}

void report_ca(const Globals& globals, const CaInfo& ca, std::string_view headline) {
  Time t = now();
  if (globals.json) return print_json(ca_json(ca, t));
  std::cout << headline << "\n\n";
  print_ca(ca, t);
}

void report_policy(const Globals& globals, const Policy& policy, std::string_view headline) {
  if (globals.json) return print_json(policy_json(policy));
  if (!headline.empty()) std::cout << headline << "\n\n";
  print_policy(policy);
}

void report_done(const Globals& globals, std::string_view nickname, std::string_view key,
                 std::string_view sentence) {
  if (!globals.json) {
    std::cout << sentence << '\n';
    return;
  }
  Json::Value out(Json::objectValue);
  out["nickname"] = sv(nickname);
  out[sv(key)] = true;
  print_json(out);
}

std::string der_to_pem(const std::vector<uint8_t>& der, std::string_view type) {
  std::string base64(4 * ((der.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(base64.data()), der.data(),
                          static_cast<int>(der.size()));
  base64.resize(static_cast<size_t>(n));
  std::string pem = "-----BEGIN " + sv(type) + "-----\n";
  for (size_t i = 0; i < base64.size(); i += 64) pem += base64.substr(i, 64) + '\n';
  return pem + "-----END " + sv(type) + "-----\n";
}

}  // namespace certvault::cli

// certvault check: what in a vault needs a person (docs/monitoring.md): certificates and
// the vault CA that expire, entries waiting for their certificate, renewals that failed
// or that fall to a person; as text, JSON or Prometheus metrics. Public data only: never
// asks for the PIN.
#include <algorithm>
#include <iostream>
#include <tuple>

#include "commands.h"
#include "files.h"
#include "output.h"
#include "renewal.h"
#include "report.h"

namespace certvault::cli {
namespace {

constexpr int64_t kDay = 86400;

enum class Format { kText, kJson, kPrometheus };

// --format, or --json (the global flag), else text.
Result<Format> output_format(const Globals& globals, const CheckArgs& args) {
  if (!args.format) return globals.json ? Format::kJson : Format::kText;
  const std::string& f = *args.format;
  Format chosen;
  if (f == "text") {
    chosen = Format::kText;
  } else if (f == "json") {
    chosen = Format::kJson;
  } else if (f == "prometheus") {
    chosen = Format::kPrometheus;
  } else {
    return invalid("--format '" + f + "' is not an output format; use text, json or prometheus");
  }
  if (globals.json && chosen != Format::kJson)
    return invalid("--json and --format " + f + " ask for two formats; give one of them");
  return chosen;
}

// One thing that needs attention. Problems sort by tier, then by `at` (the oldest expiry or
// failure, the soonest end or due date first), then by nickname.
struct Problem {
  int tier = 0;
  Time at = 0;
  std::string nickname;  // empty for the vault CA
  int exit = kExitExpiresSoon;
  std::string line;  // text, without the vault's label
  Json::Value json;
};
enum Tier { kTierExpired, kTierExpiring, kTierFailed, kTierByHand, kTierPending };

// A nickname as a shell word in a suggested command (nicknames may hold spaces).
std::string word(const std::string& nickname) {
  return nickname.find(' ') == std::string::npos ? nickname : "\"" + nickname + "\"";
}

Problem problem(const Entry& entry, int tier, Time at, std::string_view kind) {
  Problem p;
  p.tier = tier;
  p.at = at;
  p.nickname = entry.nickname;
  p.json = Json::Value(Json::objectValue);
  p.json["problem"] = std::string(kind);
  p.json["nickname"] = entry.nickname;
  return p;
}

void add_expiry(Json::Value& json, Time not_after, Time t) {
  json["not_after"] = format_time(not_after);
  json["days_left"] = Json::Int64(days_left(not_after, t));
}

std::string expiry_text(Time not_after, Time t) {
  return expired(not_after, t) ? "expired on " + format_time(not_after)
                               : expiry_phrase(not_after, t) + " (" + format_time(not_after) + ")";
}

// An active certificate that expired, or expires within the window.
std::optional<Problem> expiry_problem(const Entry& entry, Time t, int64_t window) {
  if (!expires_within(entry, t, window)) return std::nullopt;
  const Generation& g = *entry.current();
  const bool gone = expired(g.not_after, t);
  Problem p = problem(entry, gone ? kTierExpired : kTierExpiring, g.not_after,
                      gone ? "expired" : "expires-soon");
  p.exit = gone ? kExitExpired : kExitExpiresSoon;
  p.line = entry.nickname + ": " + expiry_text(g.not_after, t);
  add_expiry(p.json, g.not_after, t);
  p.json["issuer"] = std::string(to_string(g.issuer));
  return p;
}

std::optional<Problem> ca_problem(const CaInfo& ca, Time t, int64_t window) {
  if (ca.not_after - t > window) return std::nullopt;
  const bool gone = expired(ca.not_after, t);
  Problem p;
  p.tier = gone ? kTierExpired : kTierExpiring;
  p.at = ca.not_after;
  p.exit = gone ? kExitExpired : kExitExpiresSoon;
  p.line = "vault CA (" + ca.subject + "): " + expiry_text(ca.not_after, t) +
           "; make a new one with 'certvault ca create --replace --end-date DATE'";
  p.json = Json::Value(Json::objectValue);
  p.json["problem"] = gone ? "ca-expired" : "ca-expires-soon";
  p.json["subject"] = ca.subject;
  p.json["fingerprint"] = ca.fingerprint;
  add_expiry(p.json, ca.not_after, t);
  return p;
}

// The last CRL `ca crl` wrote to a file, stale or nearly: servers that check it
// (`ssl_crl`, `-crl_check`) refuse every client once it is past its nextUpdate. "Nearly"
// is the last quarter of its validity (at most the window), so a daily timer that writes a
// 7-day CRL never trips it.
std::optional<Problem> crl_problem(const CrlState& crl, Time t, int64_t window) {
  if (crl.file.empty() || crl.next_update == 0) return std::nullopt;
  const Time soon = std::min<Time>(window, (crl.next_update - crl.last_issued) / 4);
  if (crl.next_update - t > soon) return std::nullopt;
  const bool gone = crl.next_update <= t;
  Problem p;
  p.tier = gone ? kTierExpired : kTierExpiring;
  p.at = crl.next_update;
  p.exit = gone ? kExitExpired : kExitExpiresSoon;
  p.line = "CRL " + crl.file + " (number " + std::to_string(crl.number) +
           "): " + (gone ? "past its next update " : "next update due ") +
           format_time(crl.next_update) +
           (gone ? ", so servers that check it refuse every client" : "") +
           "; write a new one with 'certvault ca crl -o " + crl.file + "'";
  p.json = Json::Value(Json::objectValue);
  p.json["problem"] = gone ? "crl-expired" : "crl-expires-soon";
  p.json["file"] = crl.file;
  p.json["crl_number"] = Json::UInt64(crl.number);
  p.json["next_update"] = format_time(crl.next_update);
  return p;
}

// A request made (csr) whose certificate has not been attached: the entry's newest
// generation is pending, with no active one or an older one.
std::optional<Problem> pending_problem(const Entry& entry) {
  const Generation* g = entry.newest();
  if (g == nullptr || g->status != Status::kPending) return std::nullopt;
  Problem p = problem(entry, kTierPending, g->created_at, "pending");
  p.line = entry.nickname + ": waiting for its certificate since " + format_time(g->created_at) +
           (entry.current() ? " (the current one stays in use until then)" : "") +
           "; have the request signed, then run 'certvault attach " + word(entry.nickname) +
           " CERT.pem'";
  p.json["generation"] = Json::UInt(g->number);
  p.json["requested_at"] = format_time(g->created_at);
  p.json["active"] = entry.current() != nullptr;
  return p;
}

std::optional<Problem> failure_problem(const Entry& entry, const std::optional<RenewalPlan>& plan) {
  const RenewalState& r = entry.renewal;
  if (r.failures == 0) return std::nullopt;
  Problem p = problem(entry, kTierFailed, r.last_failure, "renewal-failed");
  p.line = entry.nickname + ": renewal failed " + std::to_string(r.failures) +
           (r.failures == 1 ? " time" : " times in a row") + ", last on " +
           format_time(r.last_failure) + ": " + r.last_error;
  p.json["failures"] = Json::UInt(r.failures);
  p.json["failures_total"] = Json::UInt64(r.failures_total);
  p.json["last_failure"] = format_time(r.last_failure);
  p.json["last_error"] = r.last_error;
  if (plan) {
    if (plan->retry_at) {
      p.line += "; next try from " + format_time(*plan->retry_at);
      p.json["retry_at"] = format_time(*plan->retry_at);
    }
    p.json["renewer"] = std::string(to_string(plan->renewer));
    p.json["not_after"] = format_time(plan->current.not_after);
  }
  return p;
}

// Due for renewal, and only a person can renew it (a certificate from an outside CA, or an
// imported key). Not when a request is already waiting for its certificate.
std::optional<Problem> by_hand_problem(const Entry& entry, const std::optional<RenewalPlan>& plan,
                                       Time t) {
  if (!plan || plan->renewer != Renewer::kByHand || !plan->ready(t)) return std::nullopt;
  if (const Generation* newest = entry.newest(); newest && newest->status == Status::kPending)
    return std::nullopt;
  Problem p = problem(entry, kTierByHand, *plan->due, "renew-by-hand");
  const std::string csr = "certvault csr " + word(entry.nickname) + " -o REQ.pem";
  const std::string attach = "certvault attach " + word(entry.nickname) + " CERT.pem";
  p.line = entry.nickname + ": due for renewal since " + format_time(*plan->due) + ", " +
           expiry_text(plan->current.not_after, t) + "; renew by hand: run '" + csr +
           "', have REQ.pem signed, then run '" + attach + "'";
  p.json["due"] = format_time(*plan->due);
  p.json["renewer"] = std::string(to_string(plan->renewer));
  p.json["rule"] = rule_text(plan->rule);
  add_expiry(p.json, plan->current.not_after, t);
  Json::Value steps(Json::arrayValue);
  steps.append(csr);
  steps.append(attach);
  p.json["steps"] = steps;
  return p;
}

std::vector<Problem> problems(const Vault& vault, Time t, int64_t window) {
  std::vector<Problem> found;
  auto add = [&found](std::optional<Problem> p) {
    if (p) found.push_back(std::move(*p));
  };
  if (auto ca = vault.active_ca()) add(ca_problem(*ca, t, window));
  if (auto crl = vault.crl_state()) add(crl_problem(*crl, t, window));
  const Policy policy = vault.policy();
  const auto issuers = vault.issuers();
  for (const auto& entry : vault.entries()) {
    const auto plan = plan_renewal(entry, policy, issuers);
    add(expiry_problem(entry, t, window));
    add(failure_problem(entry, plan));
    add(by_hand_problem(entry, plan, t));
    add(pending_problem(entry));
  }
  std::stable_sort(found.begin(), found.end(), [](const Problem& a, const Problem& b) {
    return std::tie(a.tier, a.at, a.nickname) < std::tie(b.tier, b.at, b.nickname);
  });
  return found;
}

std::string status_of(const std::vector<Problem>& found, int code) {
  if (code == kExitExpired) return "expired";
  if (code == kExitOk) return "ok";
  // Kept from before the other problem kinds: scripts match on it.
  const bool expiring = std::any_of(found.begin(), found.end(),
                                    [](const Problem& p) { return p.tier == kTierExpiring; });
  return expiring ? "expires-soon" : "needs-attention";
}

// --- Prometheus text exposition format (node_exporter's textfile collector) ------------

// Label values escape backslash, double quote and line feed (exposition format 0.0.4).
std::string label_value(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

struct Family {
  std::string_view name, type, help;
  std::string samples;  // "name{labels} value\n" lines
};

void sample(Family& family, const std::string& labels, int64_t value) {
  family.samples += std::string(family.name) + "{" + labels + "} " + std::to_string(value) + "\n";
}

std::string prometheus_text(const Vault& vault, Time t) {
  Family not_after{"certvault_cert_not_after_seconds",
                   "gauge",
                   "End of validity (notAfter) of the entry's active certificate, Unix time.",
                   {}};
  Family due{"certvault_cert_renewal_due_seconds",
             "gauge",
             "When the entry falls due for renewal under its rule, Unix time; absent when the "
             "rule is off.",
             {}};
  Family failures{"certvault_cert_renewal_failures_total",
                  "counter",
                  "Failed renewals of the entry, ever.",
                  {}};
  Family ca{"certvault_ca_not_after_seconds",
            "gauge",
            "End of validity (notAfter) of the vault's active CA, Unix time.",
            {}};
  Family checked{"certvault_check_timestamp_seconds",
                 "gauge",
                 "When certvault check wrote these metrics, Unix time.",
                 {}};
  const std::string vault_label = "vault=\"" + label_value(vault.label()) + "\"";
  const Policy policy = vault.policy();
  for (const auto& entry : vault.entries()) {
    const Generation* g = entry.current();
    if (g == nullptr) continue;
    const std::string labels = vault_label + ",nickname=\"" + label_value(entry.nickname) +
                               "\",issuer=\"" + std::string(to_string(g->issuer)) + "\"";
    sample(not_after, labels, g->not_after);
    if (auto plan = plan_renewal(entry, policy); plan && plan->due) sample(due, labels, *plan->due);
    sample(failures, labels, static_cast<int64_t>(entry.renewal.failures_total));
  }
  if (auto active = vault.active_ca()) sample(ca, vault_label, active->not_after);
  checked.samples = std::string(checked.name) + " " + std::to_string(t) + "\n";
  std::string out;
  for (const Family* f : {&not_after, &due, &failures, &ca, &checked}) {
    out += "# HELP " + std::string(f->name) + " " + std::string(f->help) + "\n";
    out += "# TYPE " + std::string(f->name) + " " + std::string(f->type) + "\n";
    out += f->samples;
  }
  return out;
}

std::string text_report(const std::vector<Problem>& found, const std::string& label) {
  std::string out;
  for (const auto& p : found) out += label + ": " + p.line + "\n";
  return out;
}

std::string json_report(const std::vector<Problem>& found, const std::string& label, int code,
                        const CheckArgs& args, Time t) {
  Json::Value out(Json::objectValue);
  out["status"] = status_of(found, code);
  out["within_days"] = Json::Int64(args.within_days);
  out["vault"] = label;
  out["checked_at"] = format_time(t);
  Json::Value list(Json::arrayValue);
  for (const auto& p : found) {
    Json::Value item = p.json;
    item["vault"] = label;
    list.append(item);
  }
  out["problems"] = list;
  return json_text(out);
}

}  // namespace

Outcome cmd_check(const Globals& globals, const CheckArgs& args) {
  CV_CHECK(check_days(args.within_days, "--within"));
  CV_TRY(format, output_format(globals, args));
  CV_TRY(vault, open_vault(globals));
  // One clock for expiry and renewal, so that a moved test clock moves both.
  const Time t = renewal_now();
  const auto found = problems(vault, t, args.within_days * kDay);
  int code = kExitOk;
  for (const auto& p : found) code = std::max(code, p.exit);
  const std::string label = vault.label();
  std::string out;
  switch (format) {
    case Format::kText:
      out = text_report(found, label);
      break;
    case Format::kJson:
      out = json_report(found, label, code, args, t);
      break;
    case Format::kPrometheus:
      out = prometheus_text(vault, t);
      break;
  }
  if (args.out == "-") {
    std::cout << out;
  } else {
    // Public data only, for node_exporter and the like to read: 0644.
    CV_CHECK(replace_file(args.out, out, "check output", 0644));
  }
  return code;
}

}  // namespace certvault::cli

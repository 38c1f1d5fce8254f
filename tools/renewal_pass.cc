#include "renewal_pass.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "acme_client.h"
#include "cli.h"
#include "cmp_client.h"
#include "renewal.h"
#include "revoke.h"
#include "uri.h"

namespace certvault::cli {
namespace {

using Kind = RenewalOutcome::Kind;

constexpr std::pair<Kind, std::string_view> kKinds[] = {{Kind::kRenewed, "renewed"},
                                                        {Kind::kWouldRenew, "would-renew"},
                                                        {Kind::kByHand, "by-hand"},
                                                        {Kind::kHeldBack, "held-back"},
                                                        {Kind::kFailed, "failed"}};

std::string by_hand_message(const Entry& e, const Generation& g) {
  const std::string why =
      g.key_imported ? "it was imported" : "its certificate is from an outside CA";
  return "renew by hand (" + why + "): run `certvault csr '" + e.nickname +
         "' -o REQ.pem`, have the CA sign it, then `certvault attach '" + e.nickname +
         "' CERT.pem`";
}

constexpr Time kAriRetryAfterFailure = 3600;  // a server not reached, or no Retry-After
constexpr Time kDirectoryRecheck = 86400;     // whether a directory offers renewalInfo

// An ACME entry with a rule that has not made it due yet.
bool ari_candidate(const RenewalPlan& plan, Time t) {
  return plan.renewer == Renewer::kAcme && plan.due && *plan.due > t;
}

std::optional<std::string> cert_id_of(const Vault& vault, const Entry& e) {
  auto der = vault.certificate_der(e.nickname);
  if (!der) return std::nullopt;
  auto id = ari_cert_id(*der);
  return id ? std::optional(*id) : std::nullopt;
}

RenewalOutcome start(const Entry& e, const std::optional<RenewalPlan>& plan) {
  RenewalOutcome o;
  o.nickname = e.nickname;
  if (plan) {
    o.renewer = std::string(to_string(plan->renewer));
    o.due = plan->due;
    o.retry_at = plan->retry_at;
  }
  return o;
}

// Renews one entry in `vault` (unlocked); records a failure. Nothing when another process
// (a timer beside the agent, a second `renew`) renewed or changed it since the plan was made.
std::optional<RenewalOutcome> renew_one(Vault& vault, const Entry& e, const RenewalPlan& plan,
                                        bool revoke_old) {
  RenewalOutcome o = start(e, plan);
  // An entry enrolled from an outside issuer renews there (kur); the others in the vault.
  const uint32_t planned = plan.current.number;
  auto renewed = plan.renewer == Renewer::kCmp    ? cmp_renew(vault, e.nickname, planned)
                 : plan.renewer == Renewer::kAcme ? acme_renew(vault, e.nickname, planned)
                                                  : vault.renew(e.nickname, planned);
  if (!renewed && vault.refresh()) {
    const auto now_entry = vault.find(e.nickname);
    const Generation* g = now_entry ? now_entry->current() : nullptr;
    if (!g || g->number != plan.current.number) return std::nullopt;
  }
  if (renewed) {
    const Generation* g = renewed->current();
    o.kind = Kind::kRenewed;
    o.generation = g ? g->number : 0;
    o.serial = g ? g->serial : "";
    o.not_after = g ? g->not_after : 0;
    o.hook = renewed->renew_hook;
    if (revoke_old) {
      // Only now that the new generation is stored: a revocation that fails (an outside
      // issuer refused or did not answer) is reported and leaves the renewal as it is.
      const uint32_t old = plan.current.number;
      auto revoked = revoke_generation(vault, e.nickname, old, RevocationReason::kSuperseded);
      if (revoked) {
        const std::string issuer = revoking_issuer(*revoked, old);
        o.revoked_old = "Generation " + std::to_string(old) + " is revoked (superseded)" +
                        (issuer.empty() ? " and goes on the vault CA's next CRL."
                                        : " at issuer '" + issuer + "'.");
        renewed = std::move(revoked);
      } else {
        o.revoked_old = "Generation " + std::to_string(old) +
                        " was not revoked: " + revoked.error().message + ".";
        o.revoke_failed = true;
      }
    }
    o.after = after_change_for(vault, *renewed);
    o.retry_at.reset();
    return o;
  }
  o.kind = Kind::kFailed;
  o.message = renewed.error().message;
  if (auto recorded =
          vault.record_renewal_failure(e.nickname, o.message, renewed.error().retry_after)) {
    if (auto p = plan_renewal(*recorded, vault.policy(), vault.issuers())) o.retry_at = p->retry_at;
  } else {
    o.message += " (and the failure could not be recorded: " + recorded.error().message + ")";
  }
  return o;
}

}  // namespace

std::vector<AriTarget> ari_targets(const Vault& vault, Time t) {
  std::vector<AriTarget> out;
  const Policy policy = vault.policy();
  const std::vector<OutsideIssuer> issuers = vault.issuers();
  for (const Entry& e : vault.entries()) {
    const auto plan = plan_renewal(e, policy, issuers);
    if (!plan || !ari_candidate(*plan, t)) continue;
    const auto issuer = std::find_if(issuers.begin(), issuers.end(),
                                     [&](const OutsideIssuer& i) { return i.name == e.issuer; });
    auto id = cert_id_of(vault, e);
    if (issuer != issuers.end() && id) out.push_back({e.nickname, std::move(*id), *issuer});
  }
  return out;
}

std::vector<std::string> fetch_renewal_info(std::span<const AriTarget> targets, AriCache& cache,
                                            Time t) {
  std::vector<std::string> notes;
  std::set<std::string> ids;
  for (const AriTarget& target : targets) ids.insert(target.cert_id);
  cache.keep_only(ids);
  for (const AriTarget& target : targets) {
    if (!cache.stale(target.cert_id, t)) continue;
    const OutsideIssuer& issuer = target.issuer;
    auto dir = cache.directory(issuer.url, t);
    if (!dir) {
      AriCache::Directory d;
      auto got = acme_get(issuer, issuer.url);
      if (got && got->status == 200) {
        d.renewal_info = renewal_info_url(got->body);
        d.next_fetch = t + kDirectoryRecheck;
      } else {
        d.next_fetch = t + kAriRetryAfterFailure;
        notes.push_back("issuer '" + issuer.name + "': its directory could not be read for " +
                        "renewal information (" +
                        (got ? "HTTP " + std::to_string(got->status) : got.error().message) +
                        "); the renewal rules decide");
      }
      cache.set_directory(issuer.url, d);
      dir = d;
    }
    if (dir->renewal_info.empty()) continue;  // not offered: the rule decides
    std::string url = dir->renewal_info;
    if (!url.ends_with('/')) url += '/';
    url += target.cert_id;
    auto got = acme_get(issuer, url);
    std::string why;
    if (!got) {
      why = got.error().message;
    } else if (got->status != 200) {
      why = "HTTP " + std::to_string(got->status) + " from " + url;
    } else if (auto info = parse_renewal_info(got->body, url); !info) {
      why = info.error().message;
    } else {
      cache.answered(target.cert_id, *info, t + ari_retry_after(got->retry_after, t));
      continue;
    }
    const bool told = got && !got->retry_after.empty();
    cache.failed(target.cert_id,
                 t + (told ? ari_retry_after(got->retry_after, t) : kAriRetryAfterFailure));
    notes.push_back("'" + target.nickname + "': no renewal information from issuer '" +
                    issuer.name + "' (" + why + "); its renewal rule decides");
  }
  return notes;
}

std::string_view to_string(RenewalOutcome::Kind kind) {
  for (const auto& [k, name] : kKinds)
    if (k == kind) return name;
  return "failed";
}

bool RenewalPass::all_done() const {
  return std::all_of(outcomes.begin(), outcomes.end(), [](const RenewalOutcome& o) {
    return o.kind == Kind::kRenewed || o.kind == Kind::kWouldRenew;
  });
}

Result<RenewalPass> renewal_pass(Vault& vault, const PassRequest& request) {
  CV_CHECK(vault.refresh());
  const Policy policy = vault.policy();
  const std::vector<OutsideIssuer> issuers = vault.issuers();
  const Time t = renewal_now();
  RenewalPass pass;
  std::vector<Entry> chosen;
  if (!request.nicknames.empty()) {
    for (const std::string& n : request.nicknames) {
      CV_CHECK(check_nickname(n));
      auto e = vault.find(n);
      if (!e)
        return no_entry(vault, n, "nothing was renewed; `certvault list` shows the nicknames");
      if (!e->current())
        return fail(Code::kRefused, "'" + n +
                                        "' has no active certificate to renew (it is disabled "
                                        "or waiting for attach); nothing was renewed");
      chosen.push_back(std::move(*e));
    }
  }
  const bool named = !request.nicknames.empty();
  if (!named && request.only)
    for (const std::string& n : *request.only)
      if (auto e = vault.find(n)) chosen.push_back(std::move(*e));  // deleted meanwhile: gone
  if (request.ari && request.fetch_ari && !named && !request.only)
    pass.notes = fetch_renewal_info(ari_targets(vault, t), *request.ari, t);
  for (const Entry& e : named || request.only ? chosen : vault.entries()) {
    const auto plan = plan_renewal(e, policy, issuers);
    if (!plan) continue;
    // RFC 9773 4.2: the moment chosen in the CA's window, when it comes before the rule's.
    std::optional<Time> ari_at;
    std::string explanation;
    if (request.ari && !named && ari_candidate(*plan, t))
      if (const auto id = cert_id_of(vault, e))
        if (const auto w = request.ari->find(*id); w && w->info) {
          ari_at = ari_renewal_time(*w->info, e.id, plan->current.number);
          explanation = w->info->explanation_url;
        }
    const bool early = ari_at && *ari_at <= t;
    if (!named && !early && !(plan->due && *plan->due <= t)) {
      const std::optional<Time> next = ari_at ? std::min(*ari_at, *plan->due) : plan->due;
      if (next && (!pass.next_due || *next < pass.next_due->second))
        pass.next_due = std::pair(e.nickname, *next);
      continue;
    }
    RenewalOutcome o = start(e, plan);
    if (plan->renewer == Renewer::kByHand) {
      o.kind = Kind::kByHand;
      o.message = by_hand_message(e, plan->current);
    } else if (!named && plan->retry_at && *plan->retry_at > t) {
      o.kind = Kind::kHeldBack;
      o.message = "held back after " + std::to_string(e.renewal.failures) + " failed renewal" +
                  (e.renewal.failures == 1 ? "" : "s") + " (last: " + e.renewal.last_error +
                  "); `certvault renew '" + e.nickname + "'` tries now";
    } else if (request.dry_run) {
      o.kind = Kind::kWouldRenew;
    } else {
      if (request.between && !request.between()) break;
      auto done = renew_one(vault, e, *plan, request.revoke_old);
      if (!done) continue;  // changed meanwhile by another process
      o = std::move(*done);
    }
    if (early) {
      o.ari_at = ari_at;
      o.ari_explanation = explanation;
    }
    pass.outcomes.push_back(std::move(o));
  }
  return pass;
}

Json::Value to_json(const RenewalPass& pass) {
  auto time = [](std::optional<Time> t) {
    return t ? Json::Value(format_time(*t)) : Json::Value();
  };
  Json::Value out(Json::objectValue);
  Json::Value list(Json::arrayValue);
  for (const RenewalOutcome& o : pass.outcomes) {
    Json::Value v(Json::objectValue);
    v["nickname"] = o.nickname;
    v["result"] = std::string(to_string(o.kind));
    v["renewer"] = o.renewer;
    v["due"] = time(o.due);
    v["retry_at"] = time(o.retry_at);
    v["message"] = o.message.empty() ? Json::Value() : Json::Value(o.message);
    if (o.ari_at) {
      Json::Value ari(Json::objectValue);
      ari["renew_at"] = format_time(*o.ari_at);
      ari["explanation_url"] =
          o.ari_explanation.empty() ? Json::Value() : Json::Value(o.ari_explanation);
      v["renewal_info"] = ari;
    } else {
      v["renewal_info"] = Json::Value();
    }
    if (o.kind == Kind::kRenewed) {
      v["generation"] = o.generation;
      v["serial"] = o.serial;
      v["not_after"] = format_time(o.not_after);
      v["then"] = o.hook.empty() ? Json::Value() : Json::Value(o.hook);
      v["revoked_old"] = o.revoked_old.empty() ? Json::Value() : Json::Value(o.revoked_old);
    }
    list.append(v);
  }
  out["renewals"] = list;
  if (pass.next_due) {
    Json::Value next(Json::objectValue);
    next["nickname"] = pass.next_due->first;
    next["due"] = format_time(pass.next_due->second);
    out["next_due"] = next;
  } else {
    out["next_due"] = Json::Value();
  }
  Json::Value notes(Json::arrayValue);
  for (const std::string& n : pass.notes) notes.append(n);
  out["notes"] = notes;
  out["ok"] = pass.all_done();
  return out;
}

Result<RenewalPass> pass_from_json(const Json::Value& v) {
  auto bad = [] {
    return fail(Code::kIo,
                "the agent's renewal report is malformed; upgrade the agent or renew "
                "with --pin-file");
  };
  auto time = [](const Json::Value& t) -> std::optional<Time> {
    if (!t.isString()) return std::nullopt;
    return parse_time(t.asString());
  };
  if (!v.isObject() || !v["renewals"].isArray()) return bad();
  RenewalPass pass;
  try {
    for (const Json::Value& r : v["renewals"]) {
      RenewalOutcome o;
      bool known = false;
      for (const auto& [k, name] : kKinds)
        if (r["result"].asString() == name) {
          o.kind = k;
          known = true;
        }
      if (!known) return bad();
      o.nickname = r["nickname"].asString();
      o.renewer = r["renewer"].asString();
      o.due = time(r["due"]);
      o.retry_at = time(r["retry_at"]);
      o.message = r["message"].isString() ? r["message"].asString() : "";
      if (r["renewal_info"].isObject()) {
        o.ari_at = time(r["renewal_info"]["renew_at"]);
        const Json::Value& url = r["renewal_info"]["explanation_url"];
        o.ari_explanation = url.isString() ? url.asString() : "";
      }
      if (o.kind == Kind::kRenewed) {
        o.generation = r["generation"].asUInt();
        o.serial = r["serial"].asString();
        o.not_after = time(r["not_after"]).value_or(0);
        o.hook = r["then"].isString() ? r["then"].asString() : "";
        o.revoked_old = r["revoked_old"].isString() ? r["revoked_old"].asString() : "";
      }
      pass.outcomes.push_back(std::move(o));
    }
    for (const Json::Value& n : v["notes"])
      if (n.isString()) pass.notes.push_back(n.asString());
    if (v["next_due"].isObject())
      if (auto due = time(v["next_due"]["due"]))
        pass.next_due = std::pair(v["next_due"]["nickname"].asString(), *due);
  } catch (const Json::Exception&) {
    return bad();
  }
  return pass;
}

}  // namespace certvault::cli

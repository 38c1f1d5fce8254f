// Status changes, deletion, per-entry attributes and policy.
#include <algorithm>

#include "access.h"
#include "renewal.h"
#include "vault_impl.h"

namespace certvault {
namespace {

using Txn = Vault::Impl::Txn;

Result<manifest::EntryRecord*> must_find(const Vault::Impl& v, manifest::Manifest& m,
                                         std::string_view nickname) {
  CV_CHECK(check_nickname(nickname));
  if (auto* e = find_entry(m, nickname)) return e;
  return no_entry_named(nickname, v.where(), v.nicknames());
}

// The CRL lists a revocation only while its entry is in the vault: deleting the entry
// before the certificate expires would make it valid again for servers that check. (An
// outside issuer keeps its own revocations.)
Result<void> check_no_live_revocation(const manifest::EntryRecord& e) {
  Time until = 0;
  for (const auto& g : e.gens)
    if (g.info.issuer == IssuerKind::kVaultCa && revocation_of(e, g.info.number) &&
        g.info.not_after > now())
      until = std::max(until, g.info.not_after);
  if (until == 0) return {};
  return fail(Code::kRefused, "'" + e.nickname + "' has a revoked certificate valid until " +
                                  format_date(until) +
                                  ", which the CRL lists only while the entry is in the vault; "
                                  "delete it after that date");
}

}  // namespace

Result<Entry> Vault::disable(std::string_view nickname) {
  Impl& v = *impl_;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    CV_TRY(e, must_find(v, m, nickname));
    bool changed = false;
    for (auto& g : e->gens)
      if (g.info.status == Status::kActive) {
        g.info.status = Status::kDisabled;
        changed = true;
      }
    if (!changed)
      return fail(Code::kRefused, "'" + e->nickname + "' has no active certificate to disable");
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

Result<Entry> Vault::enable(std::string_view nickname) {
  Impl& v = *impl_;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    CV_TRY(e, must_find(v, m, nickname));
    for (const auto& g : e->gens)
      if (g.info.status == Status::kActive)
        return fail(Code::kRefused, "'" + e->nickname + "' is already enabled");
    const Generation* revoked = nullptr;
    for (auto it = e->gens.rbegin(); it != e->gens.rend(); ++it) {
      if (it->info.status != Status::kDisabled) continue;
      if (revocation_of(*e, it->info.number)) {
        if (!revoked) revoked = &it->info;
        continue;  // a revoked certificate never signs again
      }
      it->info.status = Status::kActive;
      return {};
    }
    if (revoked)
      return fail(Code::kRefused, "generation " + std::to_string(revoked->number) + " of '" +
                                      e->nickname +
                                      "' was revoked and cannot be enabled again; `certvault "
                                      "rotate '" +
                                      e->nickname + "'` gives it a new key and certificate");
    return fail(Code::kRefused, "'" + e->nickname + "' has no disabled certificate to enable");
  }));
  return to_entry(*v.entry(nickname));
}

Result<void> Vault::remove(std::string_view nickname) {
  Impl& v = *impl_;
  return v.transact([&](manifest::Manifest& m, Txn& txn) -> Result<void> {
    auto it = std::find_if(m.entries.begin(), m.entries.end(),
                           [&](const auto& e) { return e->nickname == nickname; });
    if (it == m.entries.end()) return std::unexpected(must_find(v, m, nickname).error());
    CV_CHECK(check_no_live_revocation(**it));
    for (const auto& g : (*it)->gens) txn.drop(g.object);
    m.entries.erase(it);
    return {};
  });
}

Result<Entry> Vault::rename(std::string_view nickname, std::string_view new_nickname) {
  Impl& v = *impl_;
  CV_CHECK(check_nickname(new_nickname));
  if (nickname == new_nickname) {
    CV_CHECK(v.refresh());
    if (const auto* e = v.entry(nickname)) return to_entry(*e);
  }
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    auto it = std::find_if(m.entries.begin(), m.entries.end(),
                           [&](const auto& e) { return e->nickname == nickname; });
    if (it == m.entries.end()) return std::unexpected(must_find(v, m, nickname).error());
    if (std::any_of(m.entries.begin(), m.entries.end(),
                    [&](const auto& e) { return e->nickname == new_nickname; }))
      return fail(Code::kExists, "'" + std::string(new_nickname) + "' is already in " + v.where() +
                                     "; choose another nickname");
    manifest::edit(m, static_cast<size_t>(it - m.entries.begin())).nickname = new_nickname;
    return {};
  }));
  return to_entry(*v.entry(new_nickname));
}

Result<Entry> Vault::set_access(std::string_view nickname, std::vector<AccessRule> rules) {
  Impl& v = *impl_;
  for (const AccessRule& r : rules) CV_CHECK(check_access_rule(r));
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    CV_TRY(e, must_find(v, m, nickname));
    manifest::edit_attributes(*e).access = rules;
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

Result<Entry> Vault::set_listed_publicly(std::string_view nickname, bool on) {
  Impl& v = *impl_;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    CV_TRY(e, must_find(v, m, nickname));
    manifest::edit_attributes(*e).listed_publicly = on;
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

Result<Entry> Vault::update_renewal(std::string_view nickname,
                                    const std::function<void(RenewalSettings&)>& edit) {
  Impl& v = *impl_;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    CV_TRY(e, must_find(v, m, nickname));
    const auto& a = e->attributes();
    RenewalSettings s{a.renew_rule, a.renew_hook};
    edit(s);
    if (s.rule && !check_renew_rule(*s.rule))
      return fail(Code::kInvalidInput,
                  "the renewal rule is out of range; see `certvault "
                  "renew-rule --help`");
    if (s.hook.find_first_of("\n\r") != std::string::npos || s.hook.find('\0') != std::string::npos)
      return fail(Code::kInvalidInput, "the renewal command has a line break; give it on one line");
    if (s.rule == a.renew_rule && s.hook == a.renew_hook) return {};
    auto& edited = manifest::edit_attributes(*e);
    edited.renew_rule = s.rule;
    edited.renew_hook = s.hook;
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

Result<Entry> Vault::set_publish(std::string_view nickname, std::optional<PublishTargets> targets) {
  Impl& v = *impl_;
  if (targets && !check_publish_targets(*targets))
    return fail(Code::kInvalidInput,
                "file targets must be absolute paths without '..', all different, with a mode "
                "that lets neither group nor others write");
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    CV_TRY(e, must_find(v, m, nickname));
    manifest::edit_attributes(*e).publish = targets;
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

Result<Entry> Vault::record_renewal_failure(std::string_view nickname, std::string_view reason,
                                            Time not_before) {
  Impl& v = *impl_;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    CV_TRY(e, must_find(v, m, nickname));
    RenewalState& r = manifest::edit_attributes(*e).renewal;
    ++r.failures;
    ++r.failures_total;
    r.last_failure = renewal_now();  // the clock retries are spaced by
    // A CA's wait, at most a day: a server cannot push the entry's renewal further, nor
    // write a time the manifest cannot hold.
    r.not_before = not_before ? std::clamp(not_before, r.last_failure, r.last_failure + 86400) : 0;
    r.last_error = std::string(reason.substr(0, 500));
    // One line, and nothing a terminal would obey: the reason may be a CA's own text.
    for (char& c : r.last_error) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '\n' || c == '\r' || c == '\t')
        c = ' ';
      else if (u < 0x20 || u == 0x7f)
        c = '?';
    }
    return {};
  }));
  return to_entry(*v.entry(nickname));
}

Result<void> Vault::set_policy(const Policy& policy) {
  CV_CHECK(update_policy([&](Policy& p) { p = policy; }));
  return {};
}

Result<Policy> Vault::update_policy(const std::function<void(Policy&)>& edit) {
  Impl& v = *impl_;
  Policy result;
  CV_CHECK(v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    Policy p = m.header.policy;
    edit(p);
    if (!check_renew_rule(p.renew))
      return fail(Code::kInvalidInput, "the policy's renewal rule is out of range");
    if (p.max_lifetime && !check_lifetime(*p.max_lifetime))
      return fail(Code::kInvalidInput, "the policy's maximum lifetime " +
                                           format_period(*p.max_lifetime) +
                                           " is out of range; give 1h to 36500d");
    if (p.max_end_date && *p.max_end_date <= now())
      return fail(Code::kInvalidInput, "the policy's latest end date " +
                                           format_date(*p.max_end_date) +
                                           " is in the past; choose a later date");
    m.header.policy = result = p;
    return {};
  }));
  return result;
}

}  // namespace certvault

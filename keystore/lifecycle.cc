// Status changes, deletion and policy.
#include <algorithm>

#include "vault_impl.h"

namespace certvault {
namespace {

using Txn = Vault::Impl::Txn;

Result<manifest::EntryRecord*> must_find(const Vault::Impl& v, manifest::Manifest& m,
                                         std::string_view nickname) {
  if (auto* e = find_entry(m, nickname)) return e;
  return fail(Code::kNotFound, "no entry named '" + std::string(nickname) + "' in " + v.where() +
                                   "; `certvault list` shows the nicknames");
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
    for (auto it = e->gens.rbegin(); it != e->gens.rend(); ++it)
      if (it->info.status == Status::kDisabled) {
        it->info.status = Status::kActive;
        return {};
      }
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
    for (const auto& g : (*it)->gens) txn.drop(g.object);
    m.entries.erase(it);
    return {};
  });
}

Result<void> Vault::set_policy(const Policy& policy) {
  Impl& v = *impl_;
  if (policy.max_end_date && *policy.max_end_date <= now())
    return fail(Code::kInvalidInput, "the policy's latest end date " +
                                         format_date(*policy.max_end_date) +
                                         " is in the past; choose a later date");
  return v.transact([&](manifest::Manifest& m, Txn&) -> Result<void> {
    m.header.policy = policy;
    return {};
  });
}

}  // namespace certvault

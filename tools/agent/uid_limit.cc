#include "uid_limit.h"

#include <syslog.h>

#include <string>

#include "audit.h"

namespace certvault::agent {

constexpr auto kSayOnceIn = std::chrono::minutes(1);

UidLimit::Slot& UidLimit::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    release();
    state_ = std::move(other.state_);
    uid_ = other.uid_;
  }
  return *this;
}

UidLimit::Slot::~Slot() {
  release();
}

void UidLimit::Slot::release() {
  if (!state_) return;
  std::lock_guard lock(state_->mu);
  if (auto it = state_->open.find(uid_); it != state_->open.end() && --it->second == 0)
    state_->open.erase(it);
  state_.reset();
}

std::optional<UidLimit::Slot> UidLimit::take(uid_t uid, pid_t pid) {
  if (uid == 0 || uid == agent_uid_) return Slot();
  const auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard lock(state_->mu);
    uint32_t& open = state_->open[uid];
    if (open < kMaxConnectionsPerUid) {
      ++open;
      return Slot(state_, uid);
    }
    auto [said, first] = state_->said.try_emplace(uid, now);
    if (!first && now - said->second < kSayOnceIn) return std::nullopt;
    said->second = now;
  }
  Audit::journal(LOG_WARNING,
                 "refused a connection of uid " + std::to_string(uid) + " (pid " +
                     std::to_string(pid) + "): it has " + std::to_string(kMaxConnectionsPerUid) +
                     " open, the most one user other than root and the agent's own may hold; "
                     "further refusals of uid " +
                     std::to_string(uid) + " within a minute are not logged",
                 "");
  return std::nullopt;
}

}  // namespace certvault::agent

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
  if (auto it = state_->open.find(uid_); it != state_->open.end()) {
    --state_->others;
    if (--it->second == 0) state_->open.erase(it);
  }
  state_.reset();
}

std::optional<UidLimit::Slot> UidLimit::take(uid_t uid, pid_t pid) {
  if (uid == 0 || uid == agent_uid_) return Slot();
  const auto now = std::chrono::steady_clock::now();
  bool pool_full = false;
  {
    std::lock_guard lock(state_->mu);
    uint64_t& open = state_->open[uid];
    pool_full = state_->others >= limits_.others();
    if (open < limits_.per_user && !pool_full) {
      ++open;
      ++state_->others;
      return Slot(state_, uid);
    }
    if (open == 0) state_->open.erase(uid);
    auto [said, first] = state_->said.try_emplace(uid, now);
    if (!first && now - said->second < kSayOnceIn) return std::nullopt;
    said->second = now;
  }
  const std::string why =
      pool_full
          ? "users other than root and the agent's own hold " + std::to_string(limits_.others()) +
                " connections, all they may together (the rest is kept for root and the "
                "agent's user; --max-connections)"
          : "it has " + std::to_string(limits_.per_user) +
                " open, the most one user other than root and the agent's own may hold "
                "(--max-connections-per-user)";
  Audit::journal(LOG_WARNING,
                 "refused a connection of uid " + std::to_string(uid) + " (pid " +
                     std::to_string(pid) + "): " + why + "; further refusals of uid " +
                     std::to_string(uid) + " within a minute are not logged",
                 "");
  return std::nullopt;
}

}  // namespace certvault::agent

// Connections per peer uid. The agent takes at most 8192 connections in all; one user who
// is neither root nor the agent's own may hold at most 1024 of them, so that a user who
// opens connections without end cannot keep every other user from the agent. Root and
// the agent's own uid (the vault owner's tools, `certvault lock`) count only towards the
// total.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace certvault::agent {

inline constexpr uint32_t kMaxConnectionsPerUid = 1024;

class UidLimit {
  struct State {
    std::mutex mu;
    std::map<uid_t, uint32_t> open;  // connections per capped uid, while any is open
    std::map<uid_t, std::chrono::steady_clock::time_point> said;  // last journal line
  };

 public:
  // One connection's place, given back when the connection ends.
  class Slot {
   public:
    Slot() = default;
    Slot(std::shared_ptr<State> state, uid_t uid) : state_(std::move(state)), uid_(uid) {}
    Slot(Slot&& other) noexcept = default;
    Slot& operator=(Slot&& other) noexcept;
    ~Slot();

   private:
    void release();
    std::shared_ptr<State> state_;  // null: an uncapped uid, or moved from
    uid_t uid_ = 0;
  };

  explicit UidLimit(uid_t agent_uid) : agent_uid_(agent_uid) {}

  // A place for a new connection of `uid`, or nullopt when that uid already holds
  // kMaxConnectionsPerUid (said in the journal at most once a minute per uid).
  std::optional<Slot> take(uid_t uid, pid_t pid);

 private:
  uid_t agent_uid_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace certvault::agent

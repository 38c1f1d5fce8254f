// Connections per peer uid. The agent takes at most `total` connections (8192 unless
// `certvault agent --max-connections` says otherwise); one user who is neither root nor
// the agent's own may hold at most `per_user` of them (1024, `--max-connections-per-user`),
// so that a user who opens connections without end cannot keep every other user from the
// agent; and such users together at most all but a sixteenth, which stays for root and the
// agent's own uid (the vault owner's tools: `certvault status`, `lock`), so that a few
// users together cannot keep the owner out either. Root and the agent's own uid count
// only towards the total.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

namespace certvault::agent {

struct ConnectionLimits {
  uint64_t total = 8192;
  uint64_t per_user = 1024;
  // What users other than root and the agent's own may hold together.
  uint64_t others() const { return total - std::max<uint64_t>(1, total / 16); }
};

class UidLimit {
  struct State {
    std::mutex mu;
    std::map<uid_t, uint64_t> open;  // connections per capped uid, while any is open
    uint64_t others = 0;             // their sum
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

  UidLimit(uid_t agent_uid, ConnectionLimits limits) : agent_uid_(agent_uid), limits_(limits) {}

  // A place for a new connection of `uid`, or nullopt when that uid already holds its
  // share, or capped users together theirs (said in the journal at most once a minute
  // per uid).
  std::optional<Slot> take(uid_t uid, pid_t pid);

 private:
  uid_t agent_uid_;
  ConnectionLimits limits_;
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace certvault::agent

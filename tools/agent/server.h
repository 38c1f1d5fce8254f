// The agent's socket and event loop: Asio, with one thread per core so that two peers
// sign on two cores at once; each connection's reads and writes on its own strand.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include "audit.h"
#include "served.h"
#include "uid_limit.h"

namespace certvault::agent {

struct ListenOptions {
  std::filesystem::path socket;
  unsigned mode = 0600;        // 0660 for the system instance
  std::optional<gid_t> group;  // the socket's group (the system instance's `certvault`)
};

// The socket to serve: the one systemd passed (LISTEN_FDS), else a new one at
// `options.socket`. Refuses a path in a directory another user can write to, and a path
// where another agent already listens.
Result<int> listen_socket(const ListenOptions& options);

struct RunOptions {
  ConnectionLimits limits;
  // How often the journal gets one line per key used since the last one (and once more when
  // the agent stops); nullopt: only when it stops.
  std::optional<std::chrono::seconds> summary_every = std::chrono::minutes(15);
};

// Serves until SIGTERM or SIGINT, then locks every vault. Tells systemd when it is ready.
Result<void> run(Agent& agent, Audit& audit, int listen_fd, const RunOptions& options);

}  // namespace certvault::agent

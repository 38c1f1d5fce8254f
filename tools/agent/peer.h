// Who is at the other end of an agent connection. uid and gid come from the kernel
// (SO_PEERCRED) and are authoritative. The systemd unit comes from the peer's cgroup,
// readable for any process; the executable from /proc/PID/exe, which only root may read
// for another user's process. Debian 12's kernel has no SO_PEERPIDFD: right after
// accept() a pidfd is opened on the pid and the process start time read, and both are
// checked again after the unit and executable, so a peer that exited and had its pid
// reused is noticed and only its uid and gid count. What remains (docs/agent.md): the
// pid may already be another process's when accept() returns (the peer exited between
// connect and accept), and a peer may exec another program after it is identified.
#pragma once

#include <sys/types.h>

#include <string>

#include "access.h"
#include "error.h"

namespace certvault::agent {

struct PeerInfo {
  pid_t pid = 0;
  Peer id;  // uid, gid, groups, unit, exe
};

// Identifies the peer of an accepted Unix stream socket.
Result<PeerInfo> identify_peer(int fd);

}  // namespace certvault::agent

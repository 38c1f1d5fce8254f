#include "peer.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <systemd/sd-login.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace certvault::agent {
namespace {

// Field 22 of /proc/PID/stat: the start time in clock ticks since boot. The command name
// (field 2) may hold spaces and parentheses, so fields are counted after its last ')'.
std::string start_time(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return {};
  auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i)
    if (i == 22) return field;
  return {};
}

// Supplementary groups from /proc/PID/status ("Groups:"), for gid rules.
std::vector<gid_t> groups_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  std::vector<gid_t> out;
  while (std::getline(in, line)) {
    if (!line.starts_with("Groups:")) continue;
    std::istringstream g(line.substr(7));
    unsigned long v = 0;
    while (g >> v) out.push_back(static_cast<gid_t>(v));
  }
  return out;
}

class PidFd {
 public:
  explicit PidFd(pid_t pid) : fd_(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))) {}
  ~PidFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // A pidfd polls readable once its process has exited.
  bool exited() const {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) != 0;
  }

 private:
  int fd_;
};

}  // namespace

Result<PeerInfo> identify_peer(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
    return fail(Code::kIo, std::string("cannot identify the peer: ") + std::strerror(errno));
  PeerInfo p;
  p.pid = cred.pid;
  p.id.uid = cred.uid;
  p.id.gid = cred.gid;
  if (cred.pid <= 0) return p;  // a peer in another pid namespace: uid and gid only
  // The pidfd tells whether this very process exited while the rest was read (its pid
  // could then be another's); the start time tells whether the pid already was.
  PidFd pin(cred.pid);
  const std::string before = start_time(cred.pid);
  p.id.groups = groups_of(cred.pid);
  char* unit = nullptr;
  if (sd_pid_get_unit(cred.pid, &unit) >= 0 && unit) {
    p.id.unit = unit;
    std::free(unit);
  }
  char exe[PATH_MAX];
  const std::string link = "/proc/" + std::to_string(cred.pid) + "/exe";
  ssize_t n = ::readlink(link.c_str(), exe, sizeof exe - 1);
  if (n > 0) {
    p.id.exe.assign(exe, static_cast<size_t>(n));
    // A running program whose file was replaced (an upgrade) reads "PATH (deleted)".
    if (p.id.exe.ends_with(" (deleted)")) p.id.exe.clear();
  }
  if (!pin.ok() || pin.exited() || before.empty() || start_time(cred.pid) != before) {
    // The process is gone or was replaced: nothing but the kernel's uid and gid is sure.
    p.id.unit.clear();
    p.id.exe.clear();
    p.id.groups.clear();
  }
  return p;
}

}  // namespace certvault::agent

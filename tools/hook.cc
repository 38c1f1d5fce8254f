#include "hook.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>

extern char** environ;

namespace certvault::cli {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSlice = std::chrono::milliseconds(200);
constexpr auto kGrace = std::chrono::seconds(2);  // after SIGTERM, before SIGKILL
constexpr int kUnknown = -2;

// Waits for `pid` to end, at most until `until`; its wait status, or -1 when it is still
// running. A pidfd makes the wait a poll(2); without one (an older kernel), short sleeps.
int wait_until(pid_t pid, int pidfd, Clock::time_point until, const std::atomic<bool>* stop) {
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0 && errno != EINTR) return kUnknown;  // reaped elsewhere (SIGCHLD ignored)
    const auto left = until - Clock::now();
    if (left <= Clock::duration::zero() || (stop && stop->load())) return -1;
    const auto slice = std::min<Clock::duration>(left, kSlice);
    const int ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(slice).count() + 1);
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, ms);
    } else {
      ::usleep(static_cast<useconds_t>(std::min(ms, 50)) * 1000);
    }
  }
}

std::string status_text(int status) {
  if (status == kUnknown) return "ended (its exit status is unknown)";
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended";
}

}  // namespace

bool may_run_hooks_of(uint32_t owner) {
  return ::geteuid() == owner;
}

HookResult run_hook(const HookRun& hook, std::chrono::seconds timeout,
                    const std::atomic<bool>* stop) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e && *e; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq) vars.emplace(std::string(*e, static_cast<size_t>(eq - *e)), std::string(eq + 1));
  }
  // Nothing of the agent's own service: its readiness socket, its socket activation, its
  // credentials (the PIN).
  for (const char* own : {"NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                          "CREDENTIALS_DIRECTORY", "WATCHDOG_USEC", "WATCHDOG_PID"})
    vars.erase(own);
  for (const auto& [k, v] : hook.env) vars[k] = v;
  std::vector<std::string> flat;
  flat.reserve(vars.size());
  for (const auto& [k, v] : vars) flat.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : flat) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", command = hook.command;
  char* argv[] = {sh.data(), dash_c.data(), command.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, 2, 1);  // its output never mixes with ours
  // No descriptor of ours beyond those three: not the agent's sockets, nor the vault's.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int err = ::posix_spawn(&pid, sh.c_str(), &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) return {false, std::string("could not start /bin/sh: ") + std::strerror(err)};

  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  int status = wait_until(pid, pidfd, Clock::now() + timeout, stop);
  HookResult result;
  if (status == -1) {
    ::kill(-pid, SIGTERM);
    status = wait_until(pid, pidfd, Clock::now() + kGrace, nullptr);
    if (status == -1) {
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    result.what = (stop && stop->load()) ? "stopped with the agent"
                                         : "killed after " + std::to_string(timeout.count()) + " s";
  } else {
    result.ok = status != kUnknown && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    result.what = status_text(status);
  }
  if (pidfd >= 0) ::close(pidfd);
  return result;
}

}  // namespace certvault::cli

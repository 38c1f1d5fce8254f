// The command an entry runs after each renewal (`renew-rule --then`): through /bin/sh -c,
// with the entry's nickname, new serial and URI in its environment, stdin from /dev/null,
// its output on stderr (the terminal, or the agent's journal), no other descriptor of the
// caller's and nothing of its systemd service in its environment (readiness socket, socket
// activation, credentials), in a process group of its own that is killed when it outlives
// its time. Its failure is reported, never fatal.
#pragma once

#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace certvault::cli {

struct HookRun {
  std::string command;
  std::vector<std::pair<std::string, std::string>> env;  // set on top of the caller's
};

struct HookResult {
  bool ok = false;
  std::string what;  // "exited 0", "exited 3", "killed by signal 9", "killed after 60 s", ...
};

inline constexpr std::chrono::seconds kHookTimeout{60};

// Runs `hook` and waits for it, at most `timeout`; sooner when `*stop` turns true (the
// agent is stopping), and then the hook is killed too.
HookResult run_hook(const HookRun& hook, std::chrono::seconds timeout = kHookTimeout,
                    const std::atomic<bool>* stop = nullptr);

}  // namespace certvault::cli

// Commands a user stores in the vault: an entry's command after each renewal (`renew-rule
// --then`, with the entry's nickname, new serial and URI in its environment) and an ACME
// issuer's dns-01 hook (`issuer add --dns01-hook`). Each runs through /bin/sh -c, stdin from
// /dev/null, its output on stderr (the terminal, or the agent's journal), no other
// descriptor of the caller's and nothing of its systemd service in its environment
// (readiness socket, socket activation, credentials), in a process group of its own that is
// killed when it outlives its time. The caller decides what its failure means.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
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

// Whether this process may run a command stored in a vault that `owner` owns (an entry's
// renewal command, an ACME issuer's dns-01 hook): only as that user, never with another's
// rights. (Vault::open already refuses a vault another user owns; this stays true if that
// ever changes.)
bool may_run_hooks_of(uint32_t owner);

// Runs `hook` and waits for it, at most `timeout`; sooner when `*stop` turns true (the
// agent is stopping), and then the hook is killed too.
HookResult run_hook(const HookRun& hook, std::chrono::seconds timeout = kHookTimeout,
                    const std::atomic<bool>* stop = nullptr);

}  // namespace certvault::cli

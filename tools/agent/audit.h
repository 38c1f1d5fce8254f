// The agent's record of what it did for whom. Every signature and every refusal goes to a
// JSON-lines file (one object per line, opened append-only, 0600, rotated by size); the
// journal gets refusals, lock and unlock, and a periodic per-key summary, because
// journald's rate limit would drop one message per signature. No secret and no signed
// data is ever recorded.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>

#include "peer.h"

namespace certvault::agent {

struct AuditEvent {
  std::string vault;     // label
  std::string nickname;  // empty for vault-wide events
  uint32_t generation = 0;
  std::string key_id;
  std::string mechanism;  // "ecdsa/sha256"; empty for events that are not signatures
  std::string action;     // "sign", "resolve", "list", "unlock", "lock", "access"
  bool ok = true;
  std::string reason;  // why it was refused or failed
};

class Audit {
 public:
  // `file` empty: no file. `max_bytes`: the file is renamed to FILE.1 (the previous .1 is
  // dropped) when a line would take it past this size.
  Audit(std::filesystem::path file, uint64_t max_bytes);
  ~Audit();
  Audit(const Audit&) = delete;
  Audit& operator=(const Audit&) = delete;

  // Opens the file; fails when it cannot (the agent then refuses to start).
  Result<void> open();
  void record(const AuditEvent& e, const PeerInfo& peer);
  // One journal line per key used since the last summary, then the counts restart.
  void summarise();
  // A vault-wide note in the journal (started, unlocked, locked...).
  static void journal(int priority, const std::string& message, const std::string& vault);

 private:
  void write_line(const std::string& line);
  void rotate_if_due(size_t adding);
  std::filesystem::path file_;
  uint64_t max_bytes_;
  // Lines are written side by side (one write() each to an O_APPEND file, so lines never
  // mix); rotation, which replaces the descriptor, waits for them and stops them.
  std::shared_mutex file_mu_;
  int fd_ = -1;
  std::atomic<uint64_t> size_{0};
  std::mutex counts_mu_;
  std::map<std::string, uint64_t> counts_;  // "vault/nickname" -> signatures since summary
};

// The default audit log: $XDG_STATE_HOME/certvault/audit.log (~/.local/state/...) for a
// user, /var/lib/certvault/audit.log for the system instance.
std::filesystem::path default_audit_log(bool system);

}  // namespace certvault::agent

// One change to an entry's access policy, as `certvault access` asks for it: made by the
// CLI itself, or carried to the agent (kSetAccess) and made there on the entry as it then
// stands, so that two owners' changes do not undo each other.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "error.h"
#include "types.h"
#include "vault.h"

namespace certvault::cli {

struct AccessEdit {
  enum class Op { kAllow, kDeny, kForget, kReset, kPublic, kPrivate };
  Op op = Op::kAllow;
  PeerKind kind = PeerKind::kUid;  // allow, deny, forget
  std::string value;

  std::string to_json() const;
  static Result<AccessEdit> from_json(std::string_view text);
};

// An exe rule only where it can be honoured: only root reads /proc/PID/exe of another
// user's process, and the agent runs as the vault's owner.
Result<void> check_edit_for_owner(const AccessEdit& edit, uid_t owner);

// Applies the edit to `nickname` in an unlocked vault (one commit); the entry as it is after.
Result<Entry> apply_access_edit(Vault& vault, const std::string& nickname, const AccessEdit& edit);

}  // namespace certvault::cli

// Who may use an entry's key: the rules' syntax, and the one function that decides. The
// agent asks; keystore answers, so the rule lives in one place.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "error.h"
#include "types.h"

namespace certvault {

// What the agent knows of the process at the other end of its socket.
struct Peer {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups; may be empty
  std::string unit;           // systemd unit; empty: unknown
  std::string exe;            // executable path; empty: unknown or unreadable
};

struct AccessDecision {
  bool allowed = false;
  // Names what decided: "deny uid 1001", or "no rule allows uid 1001 (default: only the
  // vault owner and root)".
  std::string reason;
};

// The vault owner and root always; otherwise the first matching deny rule refuses, else
// the first matching allow rule admits, else refused. A unit or exe rule whose peer value
// is unknown never admits, and as a deny it refuses (fail closed).
AccessDecision decide_access(const Entry& e, uid_t owner, const Peer& p);

// A rule as a person reads it: "allow uid 1001", "deny exe /usr/bin/curl".
std::string describe(const AccessRule& rule);

// uid/gid decimal in range; unit a systemd unit name with a known type suffix and no '/';
// exe an absolute, normalised path.
Result<void> check_access_rule(const AccessRule& rule);

}  // namespace certvault

// The vault owner's CLI commands that the agent carries out (Type::kOwner) on a vault it
// holds unlocked: the keystore calls the CLI would make, with the contents of the files a
// command reads or writes passed in and out as data. The CLI opens those files in its
// caller's context; the agent never opens a path a request names.
#pragma once

#include "acme_ari.h"
#include "agent_protocol.h"
#include "audit.h"
#include "publish.h"
#include "vault.h"

namespace certvault::agent {

// Decodes the request, makes the keystore call on `vault` (unlocked; the caller holds its
// lock) and builds the reply. Names the operation and the entry in `ev` for the audit log.
// The commands of entries it renewed go to `hooks`, for the caller to run unlocked. A
// renewal of what is due consults (and adds to) `ari`, the agent's renewal information.
Result<Frame> carry_out_owner_op(Vault& vault, const Message& m, AuditEvent& ev,
                                 std::vector<cli::AfterChange>& hooks,
                                 cli::AriCache* ari = nullptr);

}  // namespace certvault::agent

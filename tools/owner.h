// The vault owner's commands that need the PIN, carried out by the agent instead when it
// holds the vault unlocked (ssh-add style): no PIN asked, one line on stderr saying so, and
// stdout as the command prints it in-process. An explicit --pin-file means "do it here".
#pragma once

#include <json/json.h>

#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "agent_client.h"
#include "cli.h"

namespace certvault::cli {

struct OwnerRequest {
  OwnerRequest(std::string op_name, Json::Value op_args = Json::Value(Json::objectValue))
      : op(std::move(op_name)), args(std::move(op_args)) {}
  std::string op;                         // see owner::known_op
  Json::Value args;                       // from owner_request.h
  std::span<const uint8_t> data;          // the contents of a file the CLI read
  const SecureBytes* password = nullptr;  // an import's PKCS#12 password
};

// Whether the agent may be asked at all: no explicit --pin-file.
bool may_ask_agent(const Globals& globals);

// The agent's reply when the agent found by agent::find_socket() serves `vault`, holds it
// unlocked and carried the request out; nullopt when there is no such agent (or no agent
// may be asked, or the request is too large for one frame), and the command works
// in-process. An error is the operation's own, as the agent reports it.
Result<std::optional<agent::Reply>> ask_agent(const Globals& globals, const Vault& vault,
                                              const OwnerRequest& request);

// An entry-changing command either way: through the agent, then the entry as it is now;
// else `here` on the vault unlocked with the PIN.
Result<Entry> change_entry_via_agent_or_here(const Globals& globals, Vault& vault,
                                             const OwnerRequest& request,
                                             const std::function<Result<Entry>(Vault&)>& here);

}  // namespace certvault::cli

#include "owner.h"

#include <iostream>

#include "owner_request.h"

namespace certvault::cli {
namespace {

// How long the CLI waits for the agent to carry out an owner's request: the longest is an
// enrollment at an outside CA (ACME: polls of 90 s, dns-01 hooks of 60 s per name).
constexpr int kOwnerTimeoutMs = 15 * 60 * 1000;

}  // namespace

bool may_ask_agent(const Globals& globals) {
  return globals.pin_file.empty();
}

Result<std::optional<agent::Reply>> ask_agent(const Globals& globals, const Vault& vault,
                                              const OwnerRequest& request) {
  using None = std::optional<agent::Reply>;
  if (!may_ask_agent(globals)) return None();
  auto socket = agent::find_socket();
  if (!socket) return None();
  Json::Value doc = request.args;
  doc["op"] = request.op;
  agent::Frame f(agent::Type::kOwner);
  f.add(agent::Tag::kVault, agent::vault_path_for_agent(vault.dir()));
  f.add(agent::Tag::kJson, owner::compact(doc));
  if (!request.data.empty()) f.add(agent::Tag::kData, request.data);
  if (request.password) f.add(agent::Tag::kPassword, request.password->span());
  if (!f.fits()) return None();
  agent::Client client(*socket);
  agent::ErrorCode code{};
  bool sent = false;
  // Generous: an RSA key is made, or an outside CA asked, while the CLI waits, as it
  // would be in-process.
  auto reply = client.call(f, &code, kOwnerTimeoutMs, &sent);
  if (!reply) {
    // Taken but not answered: the agent may have done it, or be doing it still; doing it
    // here as well could order a second certificate or revoke twice.
    if (code == agent::ErrorCode{} && sent)
      return fail(Code::kIo, "the agent at " + socket->string() + " took the '" + request.op +
                                 "' request but did not answer within " +
                                 std::to_string(kOwnerTimeoutMs / 1000) +
                                 " s; it may have carried it out: look with `certvault show` "
                                 "or `certvault issuer list` before trying again");
    // Not reached, not this vault, or locked: do it here.
    if (code == agent::ErrorCode{} || code == agent::ErrorCode::kNotServed ||
        code == agent::ErrorCode::kLocked)
      return None();
    return std::unexpected(reply.error());
  }
  std::cerr << "certvault: done by the agent at " << socket->string() << ", which holds vault '"
            << vault.label() << "' unlocked (no PIN asked)\n";
  return std::optional(std::move(*reply));
}

Result<Entry> change_entry_via_agent_or_here(const Globals& globals, Vault& vault,
                                             const OwnerRequest& request,
                                             const std::function<Result<Entry>(Vault&)>& here) {
  CV_TRY(reply, ask_agent(globals, vault, request));
  if (!reply) {
    CV_CHECK(unlock_here(globals, vault));
    return here(vault);
  }
  CV_TRY(doc, owner::parse(reply->message.text(agent::Tag::kJson)));
  const std::string nickname = doc["nickname"].asString();
  CV_CHECK(vault.refresh());
  auto entry = vault.find(nickname);
  if (!entry)
    return fail(Code::kNotFound, "the agent changed '" + nickname +
                                     "', but it has gone from vault '" + vault.label() + "' since");
  return std::move(*entry);
}

}  // namespace certvault::cli

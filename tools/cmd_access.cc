// certvault access: who may use an entry's key through the agent.
#include <grp.h>
#include <json/json.h>
#include <pwd.h>

#include <iostream>

#include "access.h"
#include "access_edit.h"
#include "agent_client.h"
#include "commands.h"
#include "output.h"
#include "owner.h"

namespace certvault::cli {

Result<std::string> numeric_id(const std::string& text, bool group) {
  if (!text.empty() && std::all_of(text.begin(), text.end(), ::isdigit)) return text;
  if (group) {
    if (const ::group* g = ::getgrnam(text.c_str())) return std::to_string(g->gr_gid);
    return invalid("no group named '" + text + "'; give a group name or a number");
  }
  if (const passwd* p = ::getpwnam(text.c_str())) return std::to_string(p->pw_uid);
  return invalid("no user named '" + text + "'; give a user name or a number");
}

namespace {

Result<AccessEdit> edit_of(const AccessArgs& a, uid_t owner) {
  AccessEdit e;
  const std::string& act = a.action;
  if (act == "allow")
    e.op = AccessEdit::Op::kAllow;
  else if (act == "deny")
    e.op = AccessEdit::Op::kDeny;
  else if (act == "forget")
    e.op = AccessEdit::Op::kForget;
  else if (act == "reset")
    e.op = AccessEdit::Op::kReset;
  else if (act == "public")
    e.op = AccessEdit::Op::kPublic;
  else if (act == "private")
    e.op = AccessEdit::Op::kPrivate;
  else
    return invalid("unknown access action '" + act +
                   "'; use show, allow, deny, forget, reset, public or private");
  const int given = !a.uid.empty() + !a.gid.empty() + !a.unit.empty() + !a.exe.empty();
  const bool needs_peer = e.op == AccessEdit::Op::kAllow || e.op == AccessEdit::Op::kDeny ||
                          e.op == AccessEdit::Op::kForget;
  if (needs_peer && given != 1)
    return invalid("'access " + act + "' needs exactly one of --uid, --gid, --unit or --exe");
  if (!needs_peer && given != 0)
    return invalid("'access " + act + "' takes no --uid, --gid, --unit or --exe");
  if (!a.uid.empty()) {
    CV_TRY(id, numeric_id(a.uid, false));
    e.kind = PeerKind::kUid;
    e.value = id;
  } else if (!a.gid.empty()) {
    CV_TRY(id, numeric_id(a.gid, true));
    e.kind = PeerKind::kGid;
    e.value = id;
  } else if (!a.unit.empty()) {
    e.kind = PeerKind::kUnit;
    e.value = a.unit;
  } else if (!a.exe.empty()) {
    e.kind = PeerKind::kExe;
    e.value = a.exe;
  }
  CV_CHECK(check_edit_for_owner(e, owner));
  if (needs_peer) CV_CHECK(check_access_rule({e.op != AccessEdit::Op::kDeny, e.kind, e.value}));
  return e;
}

void print_access(const Globals& globals, const Entry& e) {
  if (globals.json) {
    Json::Value v;
    v["nickname"] = e.nickname;
    v["public"] = e.listed_publicly;
    Json::Value& rules = v["rules"] = Json::Value(Json::arrayValue);
    for (const auto& r : e.access) {
      Json::Value j;
      j["verdict"] = r.allow ? "allow" : "deny";
      j["kind"] = std::string(to_string(r.kind));
      j["value"] = r.value;
      rules.append(j);
    }
    print_json(v);
    return;
  }
  std::cout << "Access to '" << e.nickname << "' through the agent:\n";
  std::cout << "  the vault owner and root: always\n";
  for (const auto& r : e.access) std::cout << "  " << describe(r) << "\n";
  if (e.access.empty()) std::cout << "  (no other rule: everyone else is refused)\n";
  std::cout << "  listing of its certificate and public key: "
            << (e.listed_publicly ? "anyone who reaches the agent" : "as for the key") << "\n";
}

// Through the agent when it holds this vault unlocked: no PIN asked. nullopt when there is
// no such agent, or it is locked, and the CLI does it itself.
Result<std::optional<Entry>> through_agent(const Globals& globals, const std::string& nickname,
                                           const AccessEdit& edit, const Vault& vault) {
  auto socket = agent::find_socket();
  if (!socket || !may_ask_agent(globals)) return std::optional<Entry>();
  agent::Client client(*socket);
  agent::Frame f(agent::Type::kSetAccess);
  f.add(agent::Tag::kVault, agent::vault_path_for_agent(vault.dir()));
  f.add(agent::Tag::kNickname, nickname);
  f.add(agent::Tag::kJson, edit.to_json());
  agent::ErrorCode code{};
  auto reply = client.call(f, &code);
  if (!reply) {
    if (code == agent::ErrorCode::kNotServed || code == agent::ErrorCode::kLocked ||
        reply.error().code == Code::kIo)
      return std::optional<Entry>();
    return std::unexpected(reply.error());
  }
  CV_CHECK(vault.refresh());
  auto e = vault.find(nickname);
  if (!e) return fail(Code::kNotFound, "'" + nickname + "' disappeared");
  return std::optional(std::move(*e));
}

}  // namespace

Outcome cmd_access(const Globals& globals, const AccessArgs& args) {
  CV_CHECK(check_nickname(args.nickname));
  CV_TRY(vault, open_vault(globals));
  if (args.action == "show") {
    auto e = vault.find(args.nickname);
    if (!e) return no_entry(vault, args.nickname);
    print_access(globals, *e);
    return kExitOk;
  }
  CV_TRY(edit, edit_of(args, vault.owner_uid()));
  if (!vault.find(args.nickname)) return no_entry(vault, args.nickname);
  CV_TRY(via_agent, through_agent(globals, args.nickname, edit, vault));
  if (via_agent) {
    if (!globals.json)
      std::cerr
          << "certvault: changed by the agent, which holds the vault unlocked (no PIN asked)\n";
    print_access(globals, *via_agent);
    return kExitOk;
  }
  CV_TRY(unlocked, open_unlocked(globals));
  CV_TRY(after, apply_access_edit(unlocked, args.nickname, edit));
  print_access(globals, after);
  return kExitOk;
}

}  // namespace certvault::cli

// agent, unlock, lock, status, audit: running the agent and talking to it.
#include <grp.h>
#include <json/json.h>
#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agent/audit.h"
#include "agent/served.h"
#include "agent/server.h"
#include "agent_client.h"
#include "commands.h"
#include "output.h"
#include "pin_source.h"
#include "secret_input.h"

namespace certvault::cli {
namespace {

namespace fs = std::filesystem;
using agent::Client;
using agent::Frame;
using agent::Tag;
using agent::Type;

constexpr const char* kSystemGroup = "certvault";
constexpr const char* kSystemVault = "/var/lib/certvault/default";
constexpr std::chrono::seconds kUserTtl = std::chrono::hours(8);

Result<std::unique_ptr<Client>> connect_agent() {
  auto socket = agent::find_socket();
  if (!socket)
    return fail(Code::kNotFound,
                "no certvault agent is running (no socket at $CERTVAULT_AGENT_SOCK, " +
                    agent::user_socket().string() + " or " + agent::system_socket().string() +
                    "); start one with `certvault agent` or `systemctl --user start "
                    "certvault-agent.socket`");
  return std::make_unique<Client>(*socket);
}

// The vault as the agent should know it: "" (its default) unless one was named.
std::string vault_name(const Globals& globals) {
  std::string dir = globals.vault;
  if (dir.empty())
    if (const char* env = ::secure_getenv("CERTVAULT_VAULT"); env && *env) dir = env;
  return dir.empty() ? std::string() : agent::vault_path_for_agent(dir);
}

Json::Value parse_json(std::string_view text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  std::string errors;
  r->parse(text.data(), text.data() + text.size(), &v, &errors);
  return v;
}

std::string span_text(int64_t seconds) {
  if (seconds < 0) return "-";
  const int64_t h = seconds / 3600, m = (seconds % 3600) / 60, s = seconds % 60;
  if (h) return std::to_string(h) + "h" + (m < 10 ? "0" : "") + std::to_string(m) + "m";
  if (m) return std::to_string(m) + "m" + (s < 10 ? "0" : "") + std::to_string(s) + "s";
  return std::to_string(s) + "s";
}

// "YYYY-MM-DD": from the start of that day (UTC); "Nd": the last N days.
Result<Time> parse_since(const std::string& text) {
  if (text.size() >= 2 && text.back() == 'd' &&
      std::all_of(text.begin(), text.end() - 1, [](char c) { return c >= '0' && c <= '9'; }) &&
      text.size() <= 7)
    return now() - std::stoll(text.substr(0, text.size() - 1)) * 86400;
  if (text.size() == 10) {
    CV_TRY(end, parse_date(text));
    return end - 86399;
  }
  return invalid("--since '" + text + "' is not a date; write YYYY-MM-DD or Nd (the last N days)");
}

}  // namespace

Result<std::optional<std::chrono::seconds>> parse_duration(const std::string& text) {
  if (text == "none" || text == "0") return std::optional<std::chrono::seconds>();
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &used);
  } catch (...) {
    used = 0;
  }
  const std::string unit = text.substr(used);
  const long long scale = unit == "s" || unit.empty() ? 1
                          : unit == "m"               ? 60
                          : unit == "h"               ? 3600
                          : unit == "d"               ? 86400
                                                      : 0;
  if (used == 0 || n <= 0 || scale == 0 || n > 3650LL * 86400 / scale)
    return invalid("'" + text +
                   "' is not a duration; write N followed by s, m, h or d (30m, 8h, "
                   "2d), or none");
  return std::optional(std::chrono::seconds(n * scale));
}

Outcome cmd_agent(const Globals& globals, const AgentArgs& args) {
  agent::ServeOptions serve;
  for (const auto& v : args.vaults) serve.vaults.emplace_back(v);
  if (!globals.vault.empty()) serve.vaults.insert(serve.vaults.begin(), globals.vault);
  if (serve.vaults.empty()) {
    // $CERTVAULT_VAULT, when set, names the vault for the system instance too.
    const char* env = ::secure_getenv("CERTVAULT_VAULT");
    serve.vaults.push_back(args.system && !(env && *env) ? fs::path(kSystemVault)
                                                         : default_vault_dir());
  }
  if (!args.default_vault.empty()) serve.default_vault = args.default_vault;
  if (args.ttl) {
    CV_TRY(ttl, parse_duration(*args.ttl));
    serve.default_ttl = ttl;
  } else if (!args.system) {
    serve.default_ttl = kUserTtl;
  }
  {
    CV_TRY(every, parse_duration(args.renew_every));
    serve.renew_every = every;
  }
  CV_TRY(summary_every, parse_duration(args.summary_every));
  agent::ListenOptions listen;
  listen.socket = !args.socket.empty() ? fs::path(args.socket)
                  : args.system        ? agent::system_socket()
                                       : agent::user_socket();
  if (args.system) {
    listen.mode = 0660;
    if (group* g = ::getgrnam(kSystemGroup)) listen.group = g->gr_gid;
  }
  const fs::path audit_path =
      !args.audit_log.empty() ? fs::path(args.audit_log) : agent::default_audit_log(args.system);
  agent::Audit audit(audit_path, args.audit_max_bytes);
  CV_CHECK(audit.open());
  agent::Agent served(audit);
  CV_CHECK(served.serve(serve));
  // Unattended unlock at boot: LoadCredentialEncrypted=certvault-pin:... in the unit.
  if (const char* creds = ::getenv("CREDENTIALS_DIRECTORY"); creds && *creds) {
    const fs::path pin_file = fs::path(creds) / "certvault-pin";
    std::error_code ec;
    if (fs::exists(pin_file, ec)) {
      // A PIN that does not unlock is reported and the vault stays locked: exiting would
      // let socket activation restart the agent, and count a wrong PIN, at each connection.
      agent::PeerInfo self;
      self.pid = ::getpid();
      self.id.uid = ::geteuid();
      self.id.gid = ::getegid();
      auto pin = read_credential_file(pin_file.string(), "the certvault-pin credential");
      auto unlocked = !pin   ? Result<void>(std::unexpected(pin.error()))
                      : *pin ? served.unlock_default(**pin, self)
                             : served.unlock_default(SecureBytes(), self);
      if (!unlocked) {
        std::cerr << "certvault agent: the certvault-pin credential did not unlock the vault: "
                  << unlocked.error().message << "; it stays locked until certvault unlock"
                  << std::endl;
        agent::Audit::journal(
            LOG_ERR,
            "the certvault-pin credential did not unlock the vault: " + unlocked.error().message,
            "");
      }
    }
  }
  CV_TRY(fd, agent::listen_socket(listen));
  agent::Audit::journal(LOG_INFO, "listening on " + listen.socket.string(), "");
  std::cerr << "certvault agent: listening on "
            << (listen.socket.empty() ? "the socket systemd passed" : listen.socket.string())
            << std::endl;
  agent::RunOptions options;
  options.limits.total = args.max_connections;
  options.limits.per_user = args.max_connections_per_user;
  options.summary_every = summary_every;
  CV_CHECK(agent::run(served, audit, fd, options));
  return kExitOk;
}

Outcome cmd_unlock(const Globals& globals, const UnlockArgs& args) {
  std::optional<std::chrono::seconds> ttl;
  bool ttl_given = false;
  if (args.ttl) {
    CV_TRY(parsed, parse_duration(*args.ttl));
    ttl = parsed;
    ttl_given = true;
  }
  CV_TRY(client, connect_agent());
  const std::string name = vault_name(globals);
  Frame ask(Type::kToken);
  ask.add(Tag::kVault, name);
  CV_TRY(token, client->call(ask));
  const Json::Value info = parse_json(token.message.text(Tag::kJson));
  const std::string label = info["label"].asString();
  CV_TRY(pin,
         read_secret(globals.pin_file, "PIN for vault '" + label + "': ", {"PIN", "--pin-file"}));
  Frame request(Type::kUnlock);
  request.add(Tag::kVault, name);
  request.add(Tag::kPin, pin.view());
  if (ttl_given) request.add_u64(Tag::kTtl, ttl ? static_cast<uint64_t>(ttl->count()) : 0);
  CV_TRY(reply, client->call(request, nullptr, 120000));
  if (globals.json) {
    Json::Value v;
    v["vault"] = label;
    v["unlocked"] = true;
    print_json(v);
  } else {
    std::cout << "vault '" << label << "' unlocked in the agent at " << client->socket().string()
              << (ttl_given && ttl ? " for " + span_text(ttl->count()) : "") << std::endl;
  }
  return kExitOk;
}

Outcome cmd_lock(const Globals& globals, const LockArgs& args) {
  CV_TRY(client, connect_agent());
  Frame request(Type::kLock);
  if (!args.all) request.add(Tag::kVault, vault_name(globals));
  CV_TRY(reply, client->call(request));
  if (!globals.json)
    std::cout << (args.all ? "every vault locked" : "vault locked") << " in the agent at "
              << client->socket().string() << std::endl;
  return kExitOk;
}

Outcome cmd_status(const Globals& globals) {
  CV_TRY(client, connect_agent());
  Frame request(Type::kStatus);
  CV_TRY(reply, client->call(request));
  const Json::Value v = parse_json(reply.message.text(Tag::kJson));
  if (globals.json) {
    Json::Value out = v;
    out["socket"] = client->socket().string();
    print_json(out);
    return kExitOk;
  }
  std::cout << "agent pid " << v["pid"].asInt() << " (uid " << v["uid"].asUInt() << ") on "
            << client->socket().string() << ", " << v["connections"].asUInt64() << " connections"
            << std::endl;
  std::vector<std::vector<std::string>> rows{{"VAULT", "STATE", "SINCE", "TTL LEFT", "CLIENTS",
                                              "SIGNATURES", "REFUSED", "DUE", "LAST RENEWAL PASS",
                                              "PATH"}};
  for (const auto& s : v["vaults"]) {
    const bool open = s["unlocked"].asBool();
    rows.push_back(
        {s["label"].asString() + (s["default"].asBool() ? " (default)" : ""),
         open ? "unlocked" : "locked", open ? format_time(s["unlocked_at"].asInt64()) : "-",
         !open                    ? "-"
         : s["ttl_left"].isNull() ? "none"
                                  : span_text(s["ttl_left"].asInt64()),
         std::to_string(s["clients"].asUInt64()), std::to_string(s["signatures"].asUInt64()),
         std::to_string(s["refusals"].asUInt64()), std::to_string(s["due_for_renewal"].asUInt64()),
         s["renewal"]["last_pass"].isString() ? s["renewal"]["last_pass"].asString() : "-",
         s["path"].asString()});
  }
  print_table(rows);
  return kExitOk;
}

Outcome cmd_audit(const Globals& globals, const AuditArgs& args) {
  std::optional<Time> since;
  if (args.since) {
    CV_TRY(t, parse_since(*args.since));
    since = t;
  }
  if (args.nickname) CV_CHECK(check_nickname(*args.nickname));
  const fs::path path =
      !args.file.empty() ? fs::path(args.file) : agent::default_audit_log(args.system);
  std::ifstream current(path);
  std::ifstream rotated(path.string() + ".1");
  if (!current && !rotated)
    return fail(Code::kNotFound, "cannot read the audit log " + path.string() +
                                     "; give --audit-log PATH (the agent's --audit-log)");
  // The rotated file first: it holds the older lines.
  std::stringstream in;
  if (rotated && rotated.peek() != EOF) in << rotated.rdbuf();
  if (current && current.peek() != EOF) in << current.rdbuf();
  std::vector<std::vector<std::string>> rows{{"TIME", "RESULT", "ACTION", "VAULT", "ENTRY",
                                              "MECHANISM", "UID", "PID", "PROGRAM", "REASON"}};
  Json::Value all(Json::arrayValue);
  std::string line;
  while (std::getline(in, line)) {
    Json::Value e = parse_json(line);
    if (!e.isObject()) continue;
    if (args.nickname && e["nickname"].asString() != *args.nickname) continue;
    // ISO 8601 UTC times compare as text, to the second.
    if (since && e["time"].asString().substr(0, 19) < format_time(*since).substr(0, 19)) continue;
    if (globals.json) {
      all.append(e);
      continue;
    }
    const Json::Value& p = e["peer"];
    std::string entry = e["nickname"].asString();
    if (e.isMember("generation")) entry += "#" + std::to_string(e["generation"].asUInt());
    rows.push_back({e["time"].asString(), e["result"].asString(), e["action"].asString(),
                    e["vault"].asString(), entry.empty() ? "-" : entry,
                    e.get("mechanism", "-").asString(), std::to_string(p["uid"].asUInt()),
                    std::to_string(p["pid"].asInt()),
                    p.isMember("unit") ? p["unit"].asString() : p.get("exe", "-").asString(),
                    e.get("reason", "").asString()});
  }
  if (globals.json)
    print_json(all);
  else
    print_table(rows);
  return kExitOk;
}

}  // namespace certvault::cli

// renew-rule, renew, publish: when entries renew themselves, renewing them, and the files
// rewritten after (docs/lifecycle.md).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "output.h"
#include "owner.h"
#include "owner_request.h"
#include "publish.h"
#include "renewal.h"
#include "renewal_pass.h"
#include "report.h"

namespace certvault::cli {
namespace {

using Kind = RenewalOutcome::Kind;

std::string renewer_words(const std::string& renewer) {
  if (renewer == "vault-ca") return "by the vault CA";
  if (renewer == "self-signed") return "self-signed";
  if (renewer == "cmp") return "by its outside CA (CMP)";
  if (renewer == "acme") return "by its outside CA (ACME)";
  return "by hand";
}

std::string due_words(const RenewalOutcome& o, Time t) {
  if (o.ari_at)
    return "due since " + format_time(*o.ari_at) +
           " by its CA's renewal information, ahead of its rule" +
           (o.ari_explanation.empty() ? "" : "; see " + o.ari_explanation);
  if (!o.due) return "its rule is off";
  return (*o.due <= t ? "due since " : "due ") + format_time(*o.due);
}

void print_pass(const Vault& vault, const RenewalPass& pass, Time t) {
  for (const RenewalOutcome& o : pass.outcomes) {
    const std::string name = "'" + o.nickname + "'";
    switch (o.kind) {
      case Kind::kRenewed:
        std::cout << "Renewed " << name << (o.ari_at ? " (" + due_words(o, t) + ")" : "")
                  << ": generation " << o.generation << ", serial " << o.serial << ", valid until "
                  << format_time(o.not_after)
                  << ". Programs using its URI get the new certificate.";
        if (!o.revoked_old.empty()) std::cout << ' ' << o.revoked_old;
        std::cout << '\n';
        break;
      case Kind::kWouldRenew:
        std::cout << "Would renew " << name << " (" << due_words(o, t) << ", "
                  << renewer_words(o.renewer) << ").\n";
        break;
      case Kind::kByHand:
        std::cout << name << " (" << due_words(o, t) << "): " << o.message << ".\n";
        break;
      case Kind::kHeldBack:
        std::cout << name << " (" << due_words(o, t) << ") is " << o.message << ".\n";
        break;
      case Kind::kFailed:
        std::cout << "Could not renew " << name << (o.ari_at ? " (" + due_words(o, t) + ")" : "")
                  << ": " << o.message
                  << (o.retry_at ? "; next try after " + format_time(*o.retry_at) : "") << ".\n";
        break;
    }
  }
  if (!pass.outcomes.empty()) return;
  std::cout << "Nothing is due for renewal in vault '" << vault.label() << "'.";
  if (pass.next_due)
    std::cout << " Next: '" << pass.next_due->first << "', due "
              << format_time(pass.next_due->second) << ".";
  else
    std::cout << " No entry has a renewal rule: set one with `certvault renew-rule NICKNAME "
                 "--before 30d`, or for every entry `certvault policy set --renew-before 30d`.";
  std::cout << '\n';
}

void report_pass(const Globals& globals, const Vault& vault, const RenewalPass& pass, Time t) {
  for (const std::string& note : pass.notes) std::cerr << "certvault: " << note << '\n';
  if (globals.json) {
    Json::Value out = to_json(pass);
    out["vault"] = vault.label();
    print_json(out);
  } else {
    print_pass(vault, pass, t);
  }
}

// The log lines of the look before the renewals, ahead of the renewals' own.
void add_notes(RenewalPass& pass, const std::vector<std::string>& first) {
  std::vector<std::string> notes = first;
  for (auto& n : pass.notes)
    if (std::find(notes.begin(), notes.end(), n) == notes.end()) notes.push_back(std::move(n));
  pass.notes = std::move(notes);
}

bool needs_the_key(const RenewalPass& dry) {
  for (const auto& o : dry.outcomes)
    if (o.kind == Kind::kWouldRenew) return true;
  return false;
}

// An absolute, normalised path for a file target given on the command line.
Result<std::string> target_path(const std::optional<std::string>& given, const char* option) {
  if (!given) return std::string();
  if (given->empty() || given->back() == '/')
    return invalid(std::string(option) + " needs a file name, not '" + *given + "'");
  std::error_code ec;
  auto p = std::filesystem::absolute(*given, ec).lexically_normal();
  if (ec) return invalid("cannot make " + std::string(option) + " '" + *given + "' absolute");
  const auto parent = p.parent_path();
  if (!std::filesystem::is_directory(parent, ec))
    return invalid(std::string(option) + " '" + *given + "': the directory " + parent.string() +
                   " does not exist; create it first");
  return p.string();
}

void print_targets(const Entry& entry) {
  if (!entry.publish) {
    std::cout << "'" << entry.nickname << "' has no file targets.\n";
    return;
  }
  const PublishTargets& t = *entry.publish;
  std::cout << "Files rewritten whenever the certificate of '" << entry.nickname << "' changes:\n";
  for (const auto& [label, path] :
       {std::pair{"certificate", &t.cert}, std::pair{"chain", &t.chain},
        std::pair{"full chain", &t.fullchain}, std::pair{"key URI", &t.key_uri}})
    if (!path->empty()) std::cout << "  " << label << ": " << *path << '\n';
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", t.mode);
  std::cout << "  mode " << mode
            << (t.owner ? ", owner uid " + std::to_string(*t.owner) : std::string()) << '\n';
}

Json::Value targets_json(const Entry& entry) {
  Json::Value out(Json::objectValue);
  out["nickname"] = entry.nickname;
  if (!entry.publish) {
    out["targets"] = Json::Value();
    return out;
  }
  out["targets"] = owner::publish_json(entry.nickname, entry.publish)["targets"];
  return out;
}

}  // namespace

Outcome cmd_publish(const Globals& globals, const PublishArgs& args) {
  CV_CHECK(check_nickname(args.nickname));
  const bool files = args.cert || args.chain || args.fullchain || args.key_uri;
  if ((files ? 1 : 0) + (args.list ? 1 : 0) + (args.remove ? 1 : 0) > 1)
    return invalid("give file targets, --list or --remove, one of them");
  if (!files && (args.owner || args.mode))
    return invalid(
        "--owner and --mode go with file targets (--cert, --chain, --fullchain, "
        "--key-uri)");
  std::optional<PublishTargets> targets;
  if (files) {
    PublishTargets t;
    CV_TRY(cert, target_path(args.cert, "--cert"));
    CV_TRY(chain, target_path(args.chain, "--chain"));
    CV_TRY(fullchain, target_path(args.fullchain, "--fullchain"));
    CV_TRY(key_uri, target_path(args.key_uri, "--key-uri"));
    t.cert = cert;
    t.chain = chain;
    t.fullchain = fullchain;
    t.key_uri = key_uri;
    if (args.owner) {
      CV_TRY(uid, numeric_id(*args.owner, false));
      t.owner = static_cast<uint32_t>(std::stoul(uid));
    }
    if (args.mode) {
      const std::string& m = *args.mode;
      unsigned long mode = 0;
      if (m.empty() || m.size() > 4 || m.find_first_not_of("01234567") != std::string::npos ||
          (mode = std::stoul(m, nullptr, 8)) > 0777)
        return invalid("--mode '" + m + "' is not a file mode; give octal digits, such as 0644");
      if (mode & 022)
        return invalid("--mode '" + m +
                       "' lets others change the certificate programs trust; give one without "
                       "group or other write, such as 0644");
      t.mode = static_cast<uint32_t>(mode);
    }
    if (!check_publish_targets(t)) return invalid("give each file target a different path");
    targets = t;
  }
  CV_TRY(vault, open_vault(globals));
  if (!files && !args.remove) {  // --list, or nothing: show them
    auto entry = vault.find(args.nickname);
    if (!entry) return no_entry(vault, args.nickname);
    if (globals.json)
      print_json(targets_json(*entry));
    else
      print_targets(*entry);
    return kExitOk;
  }
  CV_CHECK(must_exist(vault, args.nickname));
  CV_TRY(entry, change_entry_via_agent_or_here(
                    globals, vault, {"publish", owner::publish_json(args.nickname, targets)},
                    [&](Vault& v) { return v.set_publish(args.nickname, targets); }));
  // The files are written now, here, by the caller; later by whoever changes the entry.
  const auto problems = publish_targets(vault, entry);
  if (globals.json) {
    Json::Value out = targets_json(entry);
    Json::Value list(Json::arrayValue);
    for (const auto& p : problems) list.append(p);
    out["problems"] = list;
    print_json(out);
  } else if (args.remove) {
    std::cout << "'" << entry.nickname
              << "' has no file targets any more; the files written so far stay.\n";
  } else {
    print_targets(entry);
  }
  for (const auto& p : problems) std::cerr << "certvault: " << p << '\n';
  return problems.empty() ? kExitOk : static_cast<int>(kExitRefused);
}

Outcome cmd_renew_rule(const Globals& globals, const RenewRuleArgs& args) {
  CV_CHECK(check_nickname(args.nickname));
  const int rules =
      (args.before ? 1 : 0) + (args.at ? 1 : 0) + (args.off ? 1 : 0) + (args.policy ? 1 : 0);
  if (rules > 1) return invalid("give one of --before, --at, --off and --policy");
  if (args.then && args.no_then) return invalid("give --then or --no-then, not both");
  if (args.then && args.then->empty())
    return invalid("--then needs a command; --no-then removes the entry's command");
  if (args.then && args.then->find_first_of("\n\r") != std::string::npos)
    return invalid("--then takes a command on one line; put longer scripts in a file and run it");
  owner::RenewRuleChange change;
  change.nickname = args.nickname;
  if (args.before) {
    CV_TRY(rule, parse_renew_before(*args.before));
    change.rule = std::optional(rule);
  } else if (args.at) {
    CV_TRY(rule, parse_renew_at(*args.at));
    change.rule = std::optional(rule);
  } else if (args.off) {
    change.rule = std::optional(RenewRule{});
  } else if (args.policy) {
    change.rule = std::optional<RenewRule>();
  }
  if (args.then) change.then = *args.then;
  if (args.no_then) change.then = std::string();
  CV_TRY(vault, open_vault(globals));
  if (!change.rule && !change.then) {  // show it
    auto entry = vault.find(args.nickname);
    if (!entry) return no_entry(vault, args.nickname);
    if (globals.json) {
      Json::Value out = renewal_json(*entry, vault.policy(), vault.issuers());
      out["nickname"] = entry->nickname;
      print_json(out);
    } else {
      print_entry(*entry, vault, now());
    }
    return kExitOk;
  }
  CV_CHECK(must_exist(vault, args.nickname));
  CV_TRY(entry, change_entry_via_agent_or_here(
                    globals, vault, {"renew-rule", owner::to_json(change)}, [&](Vault& v) {
                      return v.update_renewal(args.nickname,
                                              [&](Vault::RenewalSettings& s) { change.apply(s); });
                    }));
  report_entry(globals, vault, entry, "Set the renewal of '" + entry.nickname + "'.");
  return kExitOk;
}

Outcome cmd_renew(const Globals& globals, const RenewArgs& args) {
  CV_TRY(vault, open_vault(globals));
  for (const auto& n : args.nicknames) CV_CHECK(must_exist(vault, n));
  const Time t = renewal_now();
  PassRequest request;
  request.nicknames = args.nicknames;
  request.dry_run = true;
  // A renewal (not --dry-run) asks ACME CAs that offer renewal information about the entries
  // their rules do not make due yet, once for this run: public data, no PIN.
  AriCache ari;
  if (!args.dry_run) request.ari = &ari;
  // What is due, from public data: a dry run stops here, and so does a run with nothing the
  // vault can renew by itself, without asking for the PIN.
  CV_TRY(dry, renewal_pass(vault, request));
  if (args.dry_run || !needs_the_key(dry)) {
    report_pass(globals, vault, dry, t);
    return dry.all_done() ? kExitOk : 1;
  }
  request.dry_run = false;
  request.revoke_old = args.revoke_old;
  CV_TRY(reply,
         ask_agent(globals, vault, {"renew", owner::renew_json(args.nicknames, args.revoke_old)}));
  if (reply) {
    CV_TRY(doc, owner::parse(reply->message.get(agent::Tag::kData).value_or("")));
    CV_TRY(pass, pass_from_json(doc));
    add_notes(pass, dry.notes);
    CV_CHECK(vault.refresh());
    report_pass(globals, vault, pass, t);
    for (const auto& o : pass.outcomes)
      if (o.kind == Kind::kRenewed)
        if (auto e = vault.find(o.nickname)) follow_up(vault, *e, false);
    return pass.all_done() ? kExitOk : 1;
  }
  CV_CHECK(unlock_here(globals, vault));
  CV_TRY(pass, renewal_pass(vault, request));
  add_notes(pass, dry.notes);
  report_pass(globals, vault, pass, t);
  std::cout.flush();
  for (const auto& o : pass.outcomes)
    if (o.after)
      for (const auto& line : carry_out(*o.after)) std::cerr << "certvault: " << line << '\n';
  return pass.all_done() ? kExitOk : 1;
}

}  // namespace certvault::cli

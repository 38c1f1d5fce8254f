// list, show, uri: read public data only, never ask for the PIN (check: cmd_check.cc).
#include <openssl/pem.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <limits>

#include "commands.h"
#include "files.h"
#include "ossl.h"
#include "output.h"
#include "publish.h"
#include "report.h"
#include "suggest.h"
#include "uri.h"
#include "uri_pem_label.h"

namespace certvault::cli {
namespace {

constexpr int64_t kDay = 86400;

Result<Entry> find_entry(const Vault& vault, const std::string& nickname) {
  CV_CHECK(check_nickname(nickname));
  auto entry = vault.find(nickname);
  if (!entry) return no_entry(vault, nickname);
  return *entry;
}

}  // namespace

Outcome cmd_uri(const Globals& globals, const UriArgs& args) {
  CV_CHECK(check_nickname(args.nickname));
  if (args.out != "-") CV_CHECK(check_absent(args.out, "URI file"));
  CV_TRY(vault, open_vault(globals));
  CV_TRY(entry, find_entry(vault, args.nickname));
  CV_TRY(uri, entry_uri(vault, entry.nickname));
  if (args.pem) {
    // Holds no secret, but is a key file to the programs that read it: owner only.
    CV_CHECK(write_new_file(args.out, uri_pem(uri), "URI file", 0600));
    if (args.out == "-") return kExitOk;
  } else if (args.out != "-") {
    CV_CHECK(write_new_file(args.out, uri + "\n", "URI file", 0600));
  } else if (!globals.json) {
    std::cout << uri << '\n';
    return kExitOk;
  }
  if (globals.json) {
    Json::Value out(Json::objectValue);
    out["nickname"] = entry.nickname;
    out["uri"] = uri;
    if (args.out != "-") out["file"] = args.out;
    out["pem"] = args.pem;
    print_json(out);
  } else {
    std::cout << "Wrote " << (args.pem ? "a PEM key file holding " : "") << uri << " to "
              << args.out << ".\n";
  }
  return kExitOk;
}

namespace {

// One of `choices`, or a one-line refusal naming them (and the closest).
Result<void> check_choice(const std::string& value, std::string_view option,
                          const std::vector<std::string>& choices) {
  if (value.empty() || std::find(choices.begin(), choices.end(), value) != choices.end()) return {};
  std::string names;
  for (const auto& c : choices) names += (names.empty() ? "" : ", ") + c;
  std::string close = did_you_mean(value, choices);
  return invalid(std::string(option) + " '" + value + "' is not one of " + names +
                 (close.empty() ? "" : "; " + close));
}

// The status `list --status` matches: the shown generation's, or expired for an active
// certificate past its end.
std::string list_status(const Entry& entry, Time t) {
  const Generation* g = entry.current();
  if (g != nullptr && expired(g->not_after, t)) return "expired";
  return std::string(to_string(entry_status(entry)));
}

bool issued_by(const Entry& entry, const std::string& issuer) {
  if (entry.issuer == issuer) return true;
  const Generation* g = entry.current() ? entry.current() : entry.newest();
  return g != nullptr && to_string(g->issuer) == issuer;
}

void sort_entries(std::vector<Entry>& entries, const std::string& by) {
  auto key = [&by](const Entry& e) -> std::pair<Time, std::string> {
    if (by == "name") return {0, e.nickname};
    if (by == "created") return {e.generations.empty() ? 0 : e.generations.front().created_at, ""};
    // expiry: the current certificate's end; entries without one last.
    const Generation* g = e.current();
    return {g ? g->not_after : std::numeric_limits<Time>::max(), e.nickname};
  };
  if (!by.empty())
    std::stable_sort(entries.begin(), entries.end(),
                     [&](const Entry& x, const Entry& y) { return key(x) < key(y); });
}

}  // namespace

Outcome cmd_list(const Globals& globals, const ListArgs& args) {
  if (args.expiring_days) CV_CHECK(check_days(*args.expiring_days, "--expiring"));
  CV_CHECK(check_choice(args.sort, "--sort", {"expiry", "name", "created"}));
  CV_CHECK(check_choice(args.status, "--status",
                        {"active", "expired", "disabled", "pending", "superseded"}));
  CV_TRY(vault, open_vault(globals));
  if (!args.issuer.empty()) {
    std::vector<std::string> issuers{"vault-ca", "self-signed", "external"};
    for (const auto& issuer : vault.issuers()) issuers.push_back(issuer.name);
    CV_CHECK(check_choice(args.issuer, "--issuer", issuers));
  }
  Time t = now();
  std::vector<Entry> shown;
  for (auto& entry : vault.entries()) {
    if (args.expiring_days && !expires_within(entry, t, *args.expiring_days * kDay)) continue;
    if (!args.status.empty() && list_status(entry, t) != args.status) continue;
    if (!args.issuer.empty() && !issued_by(entry, args.issuer)) continue;
    shown.push_back(std::move(entry));
  }
  sort_entries(shown, args.sort);
  if (args.names) {
    Json::Value names(Json::arrayValue);
    for (const auto& entry : shown) {
      if (globals.json)
        names.append(entry.nickname);
      else
        std::cout << entry.nickname << '\n';
    }
    if (globals.json) print_json(names);
    return kExitOk;
  }
  if (globals.json) {
    Json::Value out(Json::arrayValue);
    for (const auto& entry : shown) out.append(entry_json(entry, vault, t));
    print_json(out);
  } else if (shown.empty()) {
    std::cout << (args.expiring_days ? "No active certificate expires within " +
                                           std::to_string(*args.expiring_days) + " days.\n"
                                     : "No entries in vault '" + vault.label() + "'.\n");
  } else {
    print_entry_table(shown, vault.policy(), t);
  }
  return kExitOk;
}

Outcome cmd_show(const Globals& globals, const ShowArgs& args) {
  CV_TRY(vault, open_vault(globals));
  CV_TRY(entry, find_entry(vault, args.nickname));
  Time t = now();
  if (globals.json) {
    Json::Value out = entry_json(entry, vault, t);
    // The current generation's certificate and chain, as PEM: what a program reads.
    if (const Generation* g = entry.current()) {
      // The generation `entry_json` shows, even if another process rotates meanwhile.
      CV_TRY(pems, pems_of(vault, entry.nickname, g->number));
      out["pem"] = pems.certificate;
      Json::Value above(Json::arrayValue);
      for (const auto& c : pems.chain) above.append(c);
      out["chain_pem"] = above;
    }
    print_json(out);
    return kExitOk;
  }
  if (!args.pem && !args.chain) {
    print_entry(entry, vault, t);
    return kExitOk;
  }
  if (entry.current() == nullptr)
    return fail(Code::kNotFound, "'" + entry.nickname +
                                     "' has no active certificate to print (its newest is " +
                                     std::string(to_string(entry_status(entry))) +
                                     "); `certvault show " + entry.nickname + "` says more");
  CV_TRY(pems, pems_of(vault, entry.nickname, entry.current()->number));
  if (args.pem) std::cout << pems.certificate;
  if (args.chain)
    for (const auto& c : pems.chain) std::cout << c;
  return kExitOk;
}

}  // namespace certvault::cli

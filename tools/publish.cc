#include "publish.h"

#include <openssl/pem.h>

#include <filesystem>
#include <iostream>

#include "files.h"
#include "ossl.h"
#include "report.h"
#include "uri.h"
#include "uri_pem_label.h"

namespace certvault::cli {

Result<Pems> pems_of(const Vault& vault, const std::string& nickname, uint32_t number) {
  CV_TRY(der, vault.certificate_der(nickname, number));
  CV_TRY(chain, vault.chain_der(nickname, number));
  Pems out{der_to_pem(der, "CERTIFICATE"), {}};
  for (const auto& c : chain) out.chain.push_back(der_to_pem(c, "CERTIFICATE"));
  return out;
}

Result<std::string> entry_uri(const Vault& vault, const std::string& nickname) {
  std::error_code ec;
  const auto dir = std::filesystem::absolute(vault.dir(), ec).lexically_normal();
  if (ec)
    return fail(Code::kIo, "cannot make the vault directory " + vault.dir().string() +
                               " absolute: " + ec.message());
  std::string text = dir.string();
  if (text.size() > 1 && text.back() == '/') text.pop_back();
  return certvault_uri(nickname) + vault_query(text);
}

std::string uri_pem(const std::string& uri) {
  const std::string label(kUriPemLabel);
  return ossl::to_text([&](BIO* bio) {
    PEM_write_bio(bio, label.c_str(), "", reinterpret_cast<const unsigned char*>(uri.data()),
                  static_cast<long>(uri.size()));
  });
}

std::vector<std::string> publish_targets(const Vault& vault, const Entry& entry) {
  std::vector<std::string> problems;
  const Generation* g = entry.current();
  if (!entry.publish || !g) return problems;
  const PublishTargets& t = *entry.publish;
  auto pems = pems_of(vault, entry.nickname, g->number);
  auto uri = entry_uri(vault, entry.nickname);
  if (!pems || !uri) {
    problems.push_back("cannot read the certificate of '" + entry.nickname +
                       "' to publish it: " + (!pems ? pems.error() : uri.error()).message);
    return problems;
  }
  std::string chain;
  for (const auto& c : pems->chain) chain += c;
  const std::optional<uid_t> owner =
      t.owner ? std::optional<uid_t>(static_cast<uid_t>(*t.owner)) : std::nullopt;
  // The key file holds no secret but is a key file to the programs that read it: never
  // more than its owner and group may read.
  const mode_t key_mode = static_cast<mode_t>(t.mode) & 0770;
  for (const auto& [path, data, what, mode] :
       {std::tuple{&t.cert, pems->certificate, "certificate file", static_cast<mode_t>(t.mode)},
        std::tuple{&t.chain, chain, "chain file", static_cast<mode_t>(t.mode)},
        std::tuple{&t.fullchain, pems->certificate + chain, "full-chain file",
                   static_cast<mode_t>(t.mode)},
        std::tuple{&t.key_uri, uri_pem(*uri), "key URI file", key_mode}}) {
    if (path->empty()) continue;
    if (auto wrote = replace_file(*path, data, what, mode, owner); !wrote)
      problems.push_back(wrote.error().message);
  }
  return problems;
}

std::optional<AfterChange> after_change_for(const Vault& vault, const Entry& entry) {
  const Generation* g = entry.current();
  if (!g || (!entry.publish && entry.renew_hook.empty())) return std::nullopt;
  std::error_code ec;
  AfterChange c;
  c.vault_dir = std::filesystem::absolute(vault.dir(), ec).lexically_normal();
  std::string dir = c.vault_dir.string();
  if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  c.vault_dir = dir;
  c.nickname = entry.nickname;
  c.generation = g->number;
  c.hook.command = entry.renew_hook;
  c.hook.env = {{"CERTVAULT_NICKNAME", entry.nickname},
                {"CERTVAULT_SERIAL", g->serial},
                {"CERTVAULT_GENERATION", std::to_string(g->number)},
                {"CERTVAULT_NOT_AFTER", format_time(g->not_after)},
                {"CERTVAULT_VAULT", dir},
                {"CERTVAULT_URI", certvault_uri(entry.nickname) + vault_query(dir)}};
  return c;
}

std::vector<std::string> carry_out(const AfterChange& c, const std::atomic<bool>* stop) {
  std::vector<std::string> lines;
  auto vault = Vault::open(c.vault_dir);
  std::optional<Entry> entry;
  if (vault) entry = vault->find(c.nickname);
  if (!vault || !entry) {
    lines.push_back("cannot read '" + c.nickname +
                    "' again to publish it: " + (vault ? "it is gone" : vault.error().message));
  } else {
    for (auto& problem : publish_targets(*vault, *entry)) lines.push_back(std::move(problem));
  }
  if (!c.hook.command.empty()) {
    const HookResult r = run_hook(c.hook, kHookTimeout, stop);
    lines.push_back("the command of '" + c.nickname + "' " + r.what + ": " + c.hook.command);
  }
  return lines;
}

void follow_up(const Vault& vault, const Entry& entry, bool here) {
  auto change = after_change_for(vault, entry);
  if (!change) return;
  std::cout.flush();
  if (!here) {
    std::cerr << "certvault: the agent rewrites the files of '" << entry.nickname
              << "' and runs its command (results in its journal)\n";
    return;
  }
  for (const auto& line : carry_out(*change)) std::cerr << "certvault: " << line << '\n';
}

}  // namespace certvault::cli

#include "publish.h"

#include <openssl/pem.h>
#include <unistd.h>

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

namespace {

// The files of `targets`, from what `vault` holds for the entry's generation `number`.
struct Contents {
  Pems pems;
  std::string key_uri_pem;
};
Result<Contents> contents_of(const Vault& vault, const std::string& nickname, uint32_t number) {
  CV_TRY(pems, pems_of(vault, nickname, number));
  CV_TRY(uri, entry_uri(vault, nickname));
  return Contents{std::move(pems), uri_pem(uri)};
}

std::vector<std::string> write_targets(const PublishTargets& t, const Contents& c) {
  std::vector<std::string> problems;
  std::string chain;
  for (const auto& pem : c.pems.chain) chain += pem;
  const std::optional<uid_t> owner =
      t.owner ? std::optional<uid_t>(static_cast<uid_t>(*t.owner)) : std::nullopt;
  // The key file holds no secret but is a key file to the programs that read it: never
  // more than its owner and group may read.
  const mode_t key_mode = static_cast<mode_t>(t.mode) & 0750;
  const mode_t mode = static_cast<mode_t>(t.mode);
  for (const auto& [path, data, what, file_mode] :
       {std::tuple{&t.cert, c.pems.certificate, "certificate file", mode},
        std::tuple{&t.chain, chain, "chain file", mode},
        std::tuple{&t.fullchain, c.pems.certificate + chain, "full-chain file", mode},
        std::tuple{&t.key_uri, c.key_uri_pem, "key URI file", key_mode}}) {
    if (path->empty()) continue;
    if (auto wrote = replace_file(*path, data, what, file_mode, owner); !wrote)
      problems.push_back(wrote.error().message);
  }
  return problems;
}

}  // namespace

std::vector<std::string> publish_targets(const Vault& vault, const Entry& entry) {
  const Generation* g = entry.current();
  if (!entry.publish || !g) return {};
  auto contents = contents_of(vault, entry.nickname, g->number);
  if (!contents)
    return {"cannot read the certificate of '" + entry.nickname +
            "' to publish it: " + contents.error().message};
  return write_targets(*entry.publish, *contents);
}

std::optional<AfterChange> after_change_for(const Vault& vault, const Entry& entry) {
  const Generation* g = entry.current();
  if (!g || (!entry.publish && entry.renew_hook.empty())) return std::nullopt;
  std::error_code ec;
  std::string dir = std::filesystem::absolute(vault.dir(), ec).lexically_normal().string();
  if (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  AfterChange c;
  c.vault_dir = dir;
  c.nickname = entry.nickname;
  c.generation = g->number;
  c.owner = vault.owner_uid();
  // What to write, read now from the vault that made the change (authenticated when it
  // is unlocked), not again later from files anyone may have changed since.
  if (entry.publish) {
    c.targets = entry.publish;
    auto contents = contents_of(vault, entry.nickname, g->number);
    if (contents) {
      c.certificate = std::move(contents->pems.certificate);
      c.chain = std::move(contents->pems.chain);
      c.key_uri_pem = std::move(contents->key_uri_pem);
    } else {
      c.problem = "cannot read the certificate of '" + entry.nickname +
                  "' to publish it: " + contents.error().message;
    }
  }
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
  // An entry's files and command are its owner's: nobody else runs them with their own
  // rights.
  if (!may_run_hooks_of(c.owner))
    return {"the files and command of '" + c.nickname + "' were not run: vault " +
            c.vault_dir.string() + " belongs to uid " + std::to_string(c.owner) +
            ", and they run only as its owner; renew it as that user"};
  std::vector<std::string> lines;
  if (!c.problem.empty()) {
    lines.push_back(c.problem);
  } else if (c.targets) {
    Contents contents{{c.certificate, c.chain}, c.key_uri_pem};
    for (auto& p : write_targets(*c.targets, contents)) lines.push_back(std::move(p));
  }
  if (!c.hook.command.empty()) {
    const HookResult r = run_hook(c.hook, kHookTimeout, stop);
    lines.push_back("the command of '" + c.nickname + "' " + r.what + ": " + c.hook.command);
  }
  return lines;
}

void follow_up(const Vault& vault, const Entry& entry, bool here) {
  if (!entry.publish && entry.renew_hook.empty()) return;
  std::cout.flush();
  if (!here) {
    std::cerr << "certvault: the agent rewrites the files of '" << entry.nickname
              << "' and runs its command (results in its journal)\n";
    return;
  }
  if (auto change = after_change_for(vault, entry))
    for (const auto& line : carry_out(*change)) std::cerr << "certvault: " << line << '\n';
}

}  // namespace certvault::cli

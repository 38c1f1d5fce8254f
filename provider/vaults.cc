#include "vaults.h"

#include <openssl/core_names.h>
#include <openssl/params.h>

#include <thread>

#include "errors.h"
#include "pin_source.h"
#include "provider.h"
#include "signing.h"

namespace certvault::provider {
namespace {

// Every failure to get a PIN is one: the key needs the PIN and the vault stays locked.
std::unexpected<Error> no_pin(std::string message) {
  return fail(Code::kLocked, std::move(message));
}

// pin-source=file:PATH, read by the keystore's one rule for secret files.
Result<SecureBytes> read_pin_file(const std::string& source, std::string_view where) {
  const std::string path = source.substr(5);  // after "file:"
  const std::string what = "the PIN file " + path + " (pin-source in " + std::string(where) + ")";
  auto pin = read_secret_file(path, what);
  if (!pin) return no_pin(pin.error().message);
  if (!*pin) return no_pin(what + " is empty; write the vault's PIN into it");
  return std::move(**pin);
}

}  // namespace

std::filesystem::path Vaults::dir_for(const VaultUri& uri) const {
  if (uri.vault) return *uri.vault;
  if (!ctx_->vault.empty()) return ctx_->vault;
  return default_vault_dir();
}

Result<std::shared_ptr<Vaults::Slot>> Vaults::slot(const std::filesystem::path& dir) {
  // One handle, and so one unlock, per vault however a URI spells its directory.
  std::error_code ec;
  std::filesystem::path canonical = std::filesystem::absolute(dir, ec);
  if (!ec) canonical = std::filesystem::weakly_canonical(canonical, ec);
  if (ec || canonical.empty())
    return fail(Code::kIo, "cannot resolve the vault directory " + dir.string() + ": " +
                               (ec ? ec.message() : std::string("empty path")));
  const std::string key = canonical.string();
  std::shared_ptr<Slot> s;
  {
    std::lock_guard lock(mu_);
    auto& entry = slots_[key];
    if (!entry) entry = std::make_shared<Slot>();
    s = entry;
  }
  std::lock_guard lock(s->mu);
  if (!s->vault) {
    auto opened = Vault::open(canonical);
    if (!opened) return std::unexpected(opened.error());
    s->vault.emplace(std::move(*opened));
    CV_DEBUG("opened vault %s", key.c_str());
  }
  return s;
}

std::shared_ptr<agent::Client> Vaults::agent() {
  auto socket = agent::find_socket(ctx_->agent_socket);
  if (!socket) return nullptr;
  std::lock_guard lock(mu_);
  if (!agent_ || agent_->socket() != *socket) agent_ = std::make_shared<agent::Client>(*socket);
  return agent_;
}

std::string Vaults::agent_vault_name(const VaultUri& uri) const {
  if (uri.vault) return *uri.vault;
  if (!ctx_->vault.empty()) return ctx_->vault.string();
  return agent::default_vault_for_agent();
}

Result<std::shared_ptr<Vaults::Slot>> Vaults::in_process_slot(const VaultUri& uri,
                                                              const agent::Client* asked) {
  auto opened = slot(dir_for(uri));
  // No vault there, and the agent serves none of that name: both are said, so that a
  // mistyped vault= does not read as "the agent was not asked".
  if (!opened && asked && opened.error().code == Code::kNotFound &&
      opened.error().remedy == Remedy::kInit) {
    Error e = opened.error();
    e.message += "; the agent at " + asked->socket().string() + " serves no vault '" +
                 agent_vault_name(uri) + "' either";
    return std::unexpected(std::move(e));
  }
  return opened;
}

Result<Resolved> Vaults::resolve(const VaultUri& uri, const std::string& nickname) {
  std::shared_ptr<agent::Client> asked;  // an agent that does not serve the URI's vault
  if (auto client = agent()) {
    CV_TRY(remote, agent::resolve(client, agent_vault_name(uri), nickname, uri.serial));
    if (remote) {
      CV_DEBUG("resolved %s through the agent at %s", certvault_uri(nickname).c_str(),
               client->socket().c_str());
      Resolved r;
      r.nickname = nickname;
      r.generation = remote->key.generation;
      r.key_type = remote->key.key_type;
      r.key_id = remote->key.key_id;
      r.cert = std::move(remote->cert);
      r.chain = std::move(remote->chain);
      r.spki = std::move(remote->spki);
      if (remote->locked) r.locked = remote->locked_message();
      r.remote = std::make_shared<const agent::RemoteKey>(std::move(remote->key));
      return r;
    }
    asked = client;
  }
  Resolved r;
  r.dir = dir_for(uri);
  CV_TRY(s, in_process_slot(uri, asked.get()));
  std::lock_guard lock(s->mu);
  Vault& v = *s->vault;
  CV_CHECK(v.refresh());
  r.vault_id = v.id();
  r.nickname = nickname;
  auto entry = v.find(nickname);
  if (!entry) {
    // The keystore's own sentence: no such entry, and the nearest names.
    auto why = v.certificate_der(nickname);
    if (!why) return std::unexpected(why.error());
    return fail(Code::kNotFound, "'" + nickname + "' is not in vault '" + v.label() + "'");
  }
  GenerationWanted wanted;
  wanted.serial = uri.serial;
  CV_TRY(g, resolve_generation(*entry, wanted, "vault '" + v.label() + "'", now()));
  r.generation = g->number;
  r.key_type = g->key_type;
  r.key_id = g->key_id;
  CV_TRY(cert, v.certificate_der(nickname, g->number));
  CV_TRY(chain, v.chain_der(nickname, g->number));
  CV_TRY(spki, v.public_key_der(nickname, g->number));
  r.cert = std::move(cert);
  r.chain = std::move(chain);
  r.spki = std::move(spki);
  return r;
}

Result<std::vector<std::string>> Vaults::nicknames(const VaultUri& uri) {
  std::shared_ptr<agent::Client> asked;
  if (auto client = agent()) {
    CV_TRY(remote, agent::nicknames(client, agent_vault_name(uri)));
    if (remote) return std::move(*remote);
    asked = client;
  }
  CV_TRY(s, in_process_slot(uri, asked.get()));
  std::lock_guard lock(s->mu);
  CV_CHECK(s->vault->refresh());
  std::vector<std::string> out;
  for (const auto& e : s->vault->entries())
    if (e.current()) out.push_back(e.nickname);
  return out;
}

Result<bool> Vaults::unlocked(Slot& s) {
  std::lock_guard lock(s.mu);
  // A vault found damaged after unlock has its keys wiped: report the damage, never ask
  // for a PIN as if it were merely locked.
  CV_CHECK(s.vault->refresh());
  return s.vault->unlocked();
}

Result<SecureBytes> Vaults::pin_for(const Resolved& r, const VaultUri& uri,
                                    const PinCallback& pin) {
  if (uri.pin_value) {
    SecureBytes given(uri.pin_value->data(), uri.pin_value->size());
    drop_line_break(given);
    if (given.empty())
      return no_pin("pin-value in the URI of " + certvault_uri(r.nickname) +
                    " holds only a line break; give the PIN");
    return given;
  }
  if (uri.pin_source) return read_pin_file(*uri.pin_source, "the URI");
  if (!ctx_->pin_source.empty()) {
    if (!ctx_->pin_source.starts_with("file:") || ctx_->pin_source.size() == 5)
      return no_pin(
          "pin-source in the certvault provider's section of openssl.cnf must be "
          "file:PATH");
    return read_pin_file(ctx_->pin_source, "openssl.cnf");
  }
  const std::string info = certvault_uri(r.nickname);
  if (pin.cb) {
    SecureBytes buffer(kMaxSecretBytes + 2);
    size_t len = 0;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PASSPHRASE_PARAM_INFO,
                                                            const_cast<char*>(info.c_str()), 0),
                           OSSL_PARAM_construct_end()};
    if (pin.cb(reinterpret_cast<char*>(buffer.data()), buffer.size(), &len, params, pin.arg) &&
        len <= buffer.size()) {
      buffer.truncate(len);
      drop_line_break(buffer);
      if (!buffer.empty()) return buffer;
    }
  }
  // A callback that gave nothing (OSSL_STORE without a UI method) is no match either.
  // The provider lives in someone else's program: it never touches its signal handlers.
  auto typed = prompt_secret("PIN for the vault of " + info + ": ", OnSignal::kLeaveAlone);
  if (!typed) return no_pin(typed.error().message);
  if (*typed && !(*typed)->empty()) return std::move(**typed);
  return no_pin("the key of " + info + " needs the PIN of the vault in " + r.dir.string() +
                "; give pin-source=file:PATH in the URI or in the provider's section of "
                "openssl.cnf, or a passphrase (-passin)");
}

Result<std::shared_ptr<const KeyHandle>> Vaults::signing_key(const Resolved& r, const VaultUri& uri,
                                                             const PinCallback& pin) {
  const std::string cache_key = r.vault_id + "/" + r.key_id;
  {
    std::lock_guard lock(mu_);
    if (auto it = keys_.find(cache_key); it != keys_.end()) return it->second;
  }
  CV_TRY(s, slot(r.dir));
  CV_TRY(is_unlocked, unlocked(*s));
  if (!is_unlocked) {
    // A passphrase callback that loads a key of the vault it is to give the PIN of would
    // otherwise wait for itself (or ask itself again, without end).
    if (s->asking.load() == std::this_thread::get_id())
      return no_pin("the key of " + certvault_uri(r.nickname) +
                    " was loaded from within the passphrase callback that is to give the PIN "
                    "of its own vault; give the PIN another way (pin-source=file:PATH)");
    // The application's callback or a person at the terminal may take their time, and the
    // callback may itself load from this vault: the vault's lock is not held meanwhile.
    std::lock_guard pin_lock(s->pin_mu);
    CV_TRY(now_unlocked, unlocked(*s));
    if (!now_unlocked) {
      struct Asking {
        Slot& slot;
        explicit Asking(Slot& s) : slot(s) { slot.asking = std::this_thread::get_id(); }
        ~Asking() { slot.asking = std::thread::id(); }
      } asking(*s);
      CV_TRY(secret, pin_for(r, uri, pin));
      std::lock_guard lock(s->mu);
      if (!s->vault->unlocked()) {
        CV_CHECK(s->vault->unlock(secret));
        CV_DEBUG("unlocked vault %s", r.dir.c_str());
      }
    }
  }
  std::lock_guard lock(s->mu);
  CV_TRY(key, s->vault->signing_key(r.nickname, r.generation));
  std::shared_ptr<const KeyHandle> signer = std::move(key);
  std::lock_guard cache_lock(mu_);
  keys_[cache_key] = signer;
  return signer;
}

}  // namespace certvault::provider

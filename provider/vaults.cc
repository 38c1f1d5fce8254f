#include "vaults.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "key.h"
#include "provider.h"

namespace certvault::provider {
namespace {

constexpr size_t kMaxPin = 4096;

// Drops one trailing "\n" or "\r\n", as `echo PIN > file` leaves it.
void drop_newline(SecureBytes& pin) {
  size_t n = pin.size();
  if (n > 0 && pin.data()[n - 1] == '\n') --n;
  if (n > 0 && pin.data()[n - 1] == '\r') --n;
  pin.truncate(n);
}

Result<SecureBytes> read_pin_file(const std::string& source, std::string_view where) {
  const std::string path = source.substr(5);  // after "file:"
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return fail(Code::kNotFound, "cannot open the PIN file " + path + " (pin-source in " +
                                     std::string(where) + "): " + std::strerror(errno));
  SecureBytes buffer(kMaxPin + 1);
  size_t used = 0;
  while (used < buffer.size()) {
    ssize_t got = ::read(fd, buffer.data() + used, buffer.size() - used);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    used += static_cast<size_t>(got);
  }
  ::close(fd);
  if (used > kMaxPin)
    return fail(Code::kInvalidInput,
                "the PIN file " + path + " is larger than " + std::to_string(kMaxPin) + " bytes");
  buffer.truncate(used);
  drop_newline(buffer);
  if (buffer.empty()) return fail(Code::kInvalidInput, "the PIN file " + path + " is empty");
  return buffer;
}

// Asks on the controlling terminal with echo off; empty when there is none.
std::optional<SecureBytes> prompt_on_tty(const std::string& prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  termios saved{};
  const bool is_tty = ::tcgetattr(fd, &saved) == 0;
  if (!is_tty) {
    ::close(fd);
    return std::nullopt;
  }
  termios quiet = saved;
  quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
  ::tcsetattr(fd, TCSAFLUSH, &quiet);
  (void)!::write(fd, prompt.data(), prompt.size());
  SecureBytes buffer(kMaxPin);
  size_t used = 0;
  while (used < buffer.size()) {
    char c = 0;
    ssize_t got = ::read(fd, &c, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0 || c == '\n') break;
    buffer.data()[used++] = static_cast<uint8_t>(c);
  }
  ::tcsetattr(fd, TCSAFLUSH, &saved);
  (void)!::write(fd, "\n", 1);
  ::close(fd);
  buffer.truncate(used);
  drop_newline(buffer);
  return buffer;
}

}  // namespace

std::filesystem::path Vaults::dir_for(const VaultUri& uri) const {
  if (uri.vault) return *uri.vault;
  if (!ctx_->vault.empty()) return ctx_->vault;
  return default_vault_dir();
}

Result<std::shared_ptr<Vaults::Slot>> Vaults::slot(const std::filesystem::path& dir) {
  std::error_code ec;
  const std::string key = std::filesystem::absolute(dir, ec).lexically_normal().string();
  std::shared_ptr<Slot> s;
  {
    std::lock_guard lock(mu_);
    auto& entry = slots_[key];
    if (!entry) entry = std::make_shared<Slot>();
    s = entry;
  }
  std::lock_guard lock(s->mu);
  if (!s->vault) {
    auto opened = Vault::open(dir);
    if (!opened) return std::unexpected(opened.error());
    s->vault.emplace(std::move(*opened));
    CV_DEBUG("opened vault %s", key.c_str());
  }
  return s;
}

Result<Resolved> Vaults::resolve(const VaultUri& uri, const std::string& nickname) {
  Resolved r;
  r.dir = dir_for(uri);
  CV_TRY(s, slot(r.dir));
  std::lock_guard lock(s->mu);
  Vault& v = *s->vault;
  CV_CHECK(v.refresh());
  r.vault_id = v.id();
  r.nickname = nickname;
  auto entry = v.find(nickname);
  const Generation* g = nullptr;
  if (entry && uri.serial) {
    for (const auto& gen : entry->generations)
      if (normalise_serial(gen.serial) == *uri.serial) g = &gen;
    if (!g)
      return fail(Code::kNotFound, "'" + nickname + "' has no generation with serial " +
                                       *uri.serial + " in vault '" + v.label() +
                                       "'; `certvault show " + nickname + "` lists them");
    if (g->status == Status::kDisabled || g->status == Status::kPending)
      return fail(Code::kRefused, "generation " + std::to_string(g->number) + " of '" + nickname +
                                      "' is " + std::string(to_string(g->status)) +
                                      " and cannot be used");
  } else if (entry) {
    g = entry->current();
  }
  if (!g) {
    // The keystore's own sentence: unknown, disabled, or waiting for its certificate.
    auto why = v.certificate_der(nickname);
    if (!why) return std::unexpected(why.error());
    return fail(Code::kRefused, "'" + nickname + "' has no usable certificate");
  }
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
  CV_TRY(s, slot(dir_for(uri)));
  std::lock_guard lock(s->mu);
  CV_CHECK(s->vault->refresh());
  std::vector<std::string> out;
  for (const auto& e : s->vault->entries())
    if (e.current()) out.push_back(e.nickname);
  return out;
}

Result<SecureBytes> Vaults::pin_for(const Resolved& r, const VaultUri& uri,
                                    const PinCallback& pin) {
  if (uri.pin_value) return SecureBytes::from(*uri.pin_value);
  if (uri.pin_source) return read_pin_file(*uri.pin_source, "the URI");
  if (!ctx_->pin_source.empty()) {
    if (!ctx_->pin_source.starts_with("file:"))
      return fail(Code::kInvalidInput,
                  "pin-source in the certvault provider's configuration must be file:PATH");
    return read_pin_file(ctx_->pin_source, "openssl.cnf");
  }
  const std::string info = uri.display();
  if (pin.cb) {
    SecureBytes buffer(kMaxPin);
    size_t len = 0;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_PASSPHRASE_PARAM_INFO,
                                                            const_cast<char*>(info.c_str()), 0),
                           OSSL_PARAM_construct_end()};
    if (pin.cb(reinterpret_cast<char*>(buffer.data()), buffer.size(), &len, params, pin.arg) &&
        len > 0 && len <= buffer.size()) {
      buffer.truncate(len);
      return buffer;
    }
  }
  // A callback that gave nothing (OSSL_STORE without a UI method) is no match either.
  if (auto typed = prompt_on_tty("PIN for the vault of " + info + ": ")) {
    if (!typed->empty()) return std::move(*typed);
  }
  return fail(Code::kLocked, "the key of " + info + " needs the PIN of the vault in " +
                                 r.dir.string() +
                                 "; give pin-source=file:PATH in the URI or in the provider's "
                                 "section of openssl.cnf, or a passphrase (-passin)");
}

Result<std::shared_ptr<EVP_PKEY>> Vaults::private_key(const Resolved& r, const VaultUri& uri,
                                                      const PinCallback& pin) {
  const std::string cache_key = r.vault_id + "/" + r.key_id;
  {
    std::lock_guard lock(mu_);
    if (auto it = keys_.find(cache_key); it != keys_.end()) return it->second;
  }
  CV_TRY(s, slot(r.dir));
  std::lock_guard lock(s->mu);
  Vault& v = *s->vault;
  if (!v.unlocked()) {
    CV_TRY(secret, pin_for(r, uri, pin));
    CV_CHECK(v.unlock(secret));
    CV_DEBUG("unlocked vault %s", r.dir.c_str());
  }
  CV_TRY(key, v.private_key(r.nickname, r.generation));
  auto shared = share(key.release());
  std::lock_guard cache_lock(mu_);
  keys_[cache_key] = shared;
  return shared;
}

}  // namespace certvault::provider

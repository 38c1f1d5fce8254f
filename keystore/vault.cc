// The vault core: opening, loading and indexing, unlocking, reading, and transactions.
#include "vault.h"

#include <dirent.h>
#include <openssl/asn1.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <unordered_set>

#include "keys.h"
#include "pin_source.h"
#include "pin_state.h"
#include "seal.h"
#include "vault_impl.h"

namespace certvault {

std::string new_id(size_t bytes) {
  return seal::to_hex(seal::random_bytes(bytes));
}

Entry to_entry(const manifest::EntryRecord& r) {
  Entry e;
  e.id = r.id;
  e.nickname = r.nickname;
  e.generations.reserve(r.gens.size());
  for (const auto& g : r.gens) e.generations.push_back(g.info);
  if (r.attrs) {
    e.access = r.attrs->access;
    e.listed_publicly = r.attrs->listed_publicly;
    e.renew_rule = r.attrs->renew_rule;
    e.renew_hook = r.attrs->renew_hook;
    e.renewal = r.attrs->renewal;
    e.publish = r.attrs->publish;
    e.revoked = r.attrs->revoked;
    e.issuer = r.attrs->issuer;
  }
  return e;
}

// secure_getenv: a setuid or setgid program (the provider and the PKCS#11 module load
// into those too) takes no vault from the environment of whoever started it. Without
// $HOME, the effective user's home from the password database, not the working directory.
fs::path default_vault_dir() {
  if (const char* v = ::secure_getenv("CERTVAULT_VAULT"); v && *v) return v;
  fs::path base;
  if (const char* x = ::secure_getenv("XDG_DATA_HOME"); x && *x) {
    base = x;
  } else if (const char* h = ::secure_getenv("HOME"); h && *h) {
    base = fs::path(h) / ".local" / "share";
  } else {
    passwd pw{};
    passwd* found = nullptr;
    char buf[4096];
    if (::getpwuid_r(::geteuid(), &pw, buf, sizeof buf, &found) == 0 && found && found->pw_dir &&
        found->pw_dir[0] == '/')
      base = fs::path(found->pw_dir) / ".local" / "share";
    else
      base = ".";
  }
  return base / "certvault" / "default";
}

// --- loading -------------------------------------------------------------------------

Result<void> Vault::Impl::load_from(std::string bytes, raw::Stamp s) const {
  auto shared = std::make_shared<const std::string>(std::move(bytes));
  CV_TRY(parsed, manifest::parse(std::move(shared), manifest_path()));
  if (unlocked()) {
    auto ok = manifest::verify(parsed.source, mac_key, manifest_path());
    if (!ok) {
      wipe_keys();  // nothing secret is done on a vault that failed authentication
      damage = ok.error();
      return ok;
    }
  }
  if (!m.header.vault_id.empty() && parsed.manifest.header.vault_id != m.header.vault_id)
    return fail(Code::kTampered, where() + " was replaced by another vault; open it again");
  m = std::move(parsed.manifest);
  source = std::move(parsed.source);
  stamp = s;
  reindex();
  return {};
}

std::vector<std::string> Vault::Impl::nicknames() const {
  std::vector<std::string> out;
  for (const auto& e : m.entries) out.push_back(e->nickname);
  return out;
}

Result<void> Vault::Impl::load() const {
  CV_TRY(read, raw::read_stamped(manifest_path()));
  return load_from(std::move(read.first), read.second);
}

Result<void> Vault::Impl::refresh() const {
  if (damage) return std::unexpected(*damage);
  if (raw::stamp(manifest_path()) == stamp) return {};
  return load();
}

void Vault::Impl::wipe_keys() const {
  vault_key.clear();
  seal_key.clear();
  mac_key.clear();
}

void Vault::Impl::reindex() const {
  by_nickname.clear();
  by_nickname.reserve(m.entries.size());
  for (size_t i = 0; i < m.entries.size(); ++i) by_nickname.emplace(m.entries[i]->nickname, i);
  by_key_id.clear();
  by_fingerprint.clear();
  ids_indexed = false;
}

void Vault::Impl::index_ids() const {
  if (ids_indexed) return;
  by_key_id.reserve(m.entries.size());
  by_fingerprint.reserve(m.entries.size());
  for (size_t i = 0; i < m.entries.size(); ++i) {
    for (const auto& g : m.entries[i]->gens) {
      by_key_id.insert_or_assign(g.info.key_id, i);
      if (!g.info.fingerprint.empty()) by_fingerprint.insert_or_assign(g.info.fingerprint, i);
    }
  }
  ids_indexed = true;
}

void Vault::Impl::set_vault_key(SecureBytes key) {
  seal_key = seal::subkey(key, seal::Purpose::kSealKeys);
  mac_key = seal::subkey(key, seal::Purpose::kAuthenticate);
  vault_key = std::move(key);
}

Result<raw::Bytes> Vault::Impl::object_bytes(const std::string& hash) const {
  auto path = objects_dir() / hash;
  auto bytes = raw::read_private(path);
  if (!bytes) {
    if (bytes.error().code != Code::kNotFound) return std::unexpected(bytes.error());
    // Another process may have deleted or replaced it since this handle last looked.
    if (raw::stamp(manifest_path()) != stamp)
      return fail(Code::kIo, where() + " changed while reading it; try again");
    return fail(Code::kTampered, where() + " is missing its file objects/" + hash +
                                     "; restore the vault directory from a backup");
  }
  // The manifest names each object by its hash and the manifest carries the MAC, so this
  // check authenticates every byte of the object once the vault is unlocked.
  if (seal::to_hex(seal::content_hash(*bytes)) != hash) return object_damaged(hash);
  return bytes;
}

std::unexpected<Error> Vault::Impl::object_damaged(const std::string& hash) const {
  return fail(Code::kTampered, where() + " failed authentication: objects/" + hash +
                                   " was changed outside certvault; restore the vault "
                                   "directory from a backup");
}

Result<key_object::KeyObject> Vault::Impl::object(const std::string& hash, std::string_view owner,
                                                  uint32_t generation) const {
  CV_TRY(bytes, object_bytes(hash));
  auto o = key_object::decode(bytes);
  if (!o || o->vault_id != m.header.vault_id || o->owner != owner || o->generation != generation)
    return object_damaged(hash);
  return o;
}

Result<key_object::KeyObject> Vault::Impl::object(const manifest::EntryRecord& e,
                                                  const manifest::GenRecord& g) const {
  return object(g.object, e.id, g.info.number);
}

Result<key_object::KeyObject> Vault::Impl::object(const manifest::CaRecord& ca) const {
  return object(ca.object, "ca:" + ca.info.id, 0);
}

Result<ossl::Pkey> Vault::Impl::open_key(const key_object::KeyObject& o) const {
  auto der = seal::open(seal_key, o.sealed_key, key_object::seal_ad(o));
  if (!der)
    return fail(Code::kTampered, where() +
                                     " failed authentication: a sealed key does not "
                                     "belong where it is stored; restore from a backup");
  auto key = keys::from_private_der(*der);
  if (!key) return fail(Code::kTampered, where() + ": " + key.error().message);
  return key;
}

Result<void> Vault::Impl::require_unlocked(std::string_view action) const {
  if (damage) return std::unexpected(*damage);  // damage, not "locked": the keys were wiped for it
  if (unlocked()) return {};
  return fail(Code::kLocked,
              "to " + std::string(action) + ", " + where() + " must be unlocked with its PIN");
}

const manifest::EntryRecord* Vault::Impl::entry(std::string_view nickname) const {
  auto it = by_nickname.find(nickname);
  return it == by_nickname.end() ? nullptr : m.entries[it->second].get();
}

Result<std::pair<const manifest::EntryRecord*, const manifest::GenRecord*>> Vault::Impl::resolve(
    std::string_view nickname, std::optional<uint32_t> number) const {
  CV_CHECK(check_nickname(nickname));  // also keeps unchecked bytes out of messages
  const auto* e = entry(nickname);
  if (!e) return no_entry_named(nickname, where(), nicknames());
  for (auto it = e->gens.rbegin(); it != e->gens.rend(); ++it) {
    if (number ? it->info.number == *number : it->info.status == Status::kActive)
      return std::pair{e, &*it};
  }
  // Said as resolve_generation says it, in words for any program: the CLI adds its
  // advice from the remedy.
  if (number)
    return fail(
        Code::kNotFound,
        "'" + e->nickname + "' has no generation " + std::to_string(*number) + " in " + where(),
        Remedy::kShowGenerations, e->nickname);
  const auto& newest = e->gens.back().info;
  if (newest.status == Status::kPending)
    return fail(Code::kRefused, "'" + e->nickname + "' has no certificate yet", Remedy::kAttach,
                e->nickname);
  return fail(Code::kRefused, "'" + e->nickname + "' is disabled", Remedy::kEnable, e->nickname);
}

const manifest::CaRecord* Vault::Impl::active_ca() const {
  for (const auto& c : m.cas)
    if (c.info.active) return &c;
  return nullptr;
}

// --- transactions --------------------------------------------------------------------

Vault::Impl::Txn::~Txn() {
  if (committed_) return;
  for (const auto& h : written_) ::unlink((impl_.objects_dir() / h).c_str());
}

Result<std::string> Vault::Impl::Txn::put(const key_object::KeyObject& o) {
  return put_bytes(key_object::encode(o));
}

Result<std::string> Vault::Impl::Txn::put_bytes(const raw::Bytes& bytes) {
  std::string hash = seal::to_hex(seal::content_hash(bytes));
  auto r = raw::write_new(impl_.objects_dir() / hash, bytes, /*sync=*/false);
  if (!r && r.error().code != Code::kExists) return std::unexpected(r.error());
  if (r) written_.push_back(hash);
  return hash;
}

Result<std::string> Vault::Impl::Txn::seal(key_object::KeyObject& o, EVP_PKEY* key) {
  CV_TRY(der, keys::private_der(key));
  o.sealed_key = seal::seal(impl_.seal_key, der.span(), key_object::seal_ad(o));
  return put(o);
}

Result<void> Vault::Impl::transact(
    const std::function<Result<void>(manifest::Manifest&, Txn&)>& change) {
  if (!unlocked()) return require_unlocked("change it");
  CV_TRY(lock, raw::WriterLock::acquire(dir));
  // Under the lock nobody else commits: compare with what is on disk now, not with a stamp
  // that an inode reused within the clock's granularity could fake.
  CV_TRY(on_disk, raw::read_stamped(manifest_path()));
  if (on_disk.second != stamp || manifest::peek_counter(on_disk.first) != m.header.counter)
    CV_CHECK(load_from(std::move(on_disk.first), on_disk.second));
  if (!unlocked()) return require_unlocked("change it");
  manifest::Manifest next = m;
  Txn txn(*this);
  CV_CHECK(change(next, txn));
  next.header.counter = m.header.counter + 1;
  if (!txn.written_.empty()) {
    std::vector<fs::path> paths;
    for (const auto& h : txn.written_) paths.push_back(objects_dir() / h);
    CV_CHECK(raw::sync_files(objects_dir(), paths));
    CV_CHECK(raw::fsync_dir(objects_dir()));
  }
  auto bytes = std::make_shared<const std::string>(manifest::serialize(next, mac_key));
  CV_CHECK(raw::replace_file(manifest_path(), seal::as_bytes(*bytes)));
  txn.committed_ = true;  // from the rename on, the new objects are named by the manifest
  m = std::move(next);
  source = manifest::source_of(std::move(bytes));
  stamp = raw::stamp(manifest_path());  // still under the lock: nobody else committed
  reindex();
  for (const auto& h : txn.dropped_) ::unlink((objects_dir() / h).c_str());
  // Leftovers of writers that died before committing; a scan every 32 commits keeps the
  // directory tidy without every commit paying for it.
  if (m.header.counter % 32 == 0) collect_garbage();
  return raw::fsync_dir(dir);
}

// Removes object files that no manifest names: leftovers of a writer that died between
// writing an object and committing. Runs under the writer lock.
void Vault::Impl::collect_garbage() const {
  std::unordered_set<std::string> live;
  live.reserve(m.entries.size() * 2 + m.cas.size());
  for (const auto& c : m.cas) live.insert(c.object);
  for (const auto& e : m.entries)
    for (const auto& g : e->gens) live.insert(g.object);
  for (const auto& data : m.data) live.insert(data.object);
  DIR* d = ::opendir(objects_dir().c_str());
  if (!d) return;
  while (dirent* de = ::readdir(d)) {
    std::string_view name(de->d_name);
    if (name == "." || name == "..") continue;
    if (!live.contains(std::string(name))) ::unlinkat(::dirfd(d), de->d_name, 0);
  }
  ::closedir(d);
}

// --- Vault: life cycle -------------------------------------------------------------------

Vault::Vault(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Vault::Vault(Vault&&) noexcept = default;
Vault& Vault::operator=(Vault&&) noexcept = default;
Vault::~Vault() = default;

namespace {

// Unicode scalar values in UTF-8's shortest form (RFC 3629), read with OpenSSL's decoder.
bool is_utf8(std::string_view text) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  size_t left = text.size();
  while (left > 0) {
    unsigned long c = 0;
    const int used = UTF8_getc(p, static_cast<int>(std::min<size_t>(left, 8)), &c);
    if (used <= 0 || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    p += used;
    left -= static_cast<size_t>(used);
  }
  return true;
}

}  // namespace

Result<void> check_init(const fs::path& dir, const InitOptions& options) {
  if (options.label.empty() || options.label.size() > 32)
    return fail(Code::kInvalidInput, "label '" + options.label +
                                         "' must be 1-32 characters (it becomes the PKCS#11 "
                                         "token label)");
  for (unsigned char c : options.label)
    if (c < 0x20 || c == 0x7f)
      return fail(Code::kInvalidInput, "label contains a control character; choose another");
  // The manifest holds it as JSON text, and PKCS#11 as CK_UTF8CHAR: other bytes would be
  // stored as U+FFFD, a label other than the one given.
  if (!is_utf8(options.label))
    return fail(Code::kInvalidInput,
                "label is not valid UTF-8 text; choose another (it becomes the PKCS#11 token "
                "label)");
  if (!seal::kdf_in_range(options.kdf))
    return fail(Code::kInvalidInput, "Argon2id cost is out of range; use 1-" +
                                         std::to_string(seal::kKdfMaxOps) +
                                         " passes and 8 KiB to " +
                                         std::to_string(seal::kKdfMaxMem >> 30) + " GiB of memory");
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec))
      return fail(Code::kExists, dir.string() +
                                     " exists and is not a directory; choose another place "
                                     "for the vault");
    if (!fs::is_empty(dir, ec))
      return fail(Code::kExists, dir.string() +
                                     " is not empty; a vault needs an empty or new directory "
                                     "(is there a vault already?)");
  }
  return {};
}

Result<void> Vault::check_recovery_format(const SecureBytes& recovery) const {
  CV_CHECK(impl_->refresh());
  if (impl_->m.header.recovery_chosen) return {};
  CV_TRY(parsed, seal::parse_recovery_secret(recovery));
  (void)parsed;
  return {};
}

namespace {

// The key that wraps the vault key for the recovery secret: keyed BLAKE2b for the
// generated 256-bit secret, Argon2id for one a person chose.
Result<SecureBytes> recovery_key_for(const manifest::Header& h, const SecureBytes& secret) {
  if (h.recovery_chosen) return seal::pin_key(secret, h.recovery_salt, h.kdf);
  CV_TRY(raw_secret, seal::parse_recovery_secret(secret));
  return seal::recovery_key(raw_secret, h.recovery_salt);
}

}  // namespace

// Creates the vault's files in `dir`. The vault key is wrapped under the recovery secret,
// and under the PIN when there is one.
Result<std::unique_ptr<Vault::Impl>> Vault::create(const fs::path& dir, const SecureBytes* pin,
                                                   const SecureBytes& recovery,
                                                   bool recovery_chosen,
                                                   const InitOptions& options) {
  if (!sodium_ready()) return fail(Code::kCrypto, "libsodium failed to initialise");
  CV_CHECK(check_init(dir, options));
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    // An empty directory the user made for the vault is tightened rather than refused.
    if (auto ok = raw::check_private(dir); !ok && ok.error().code == Code::kBadPermissions)
      ::chmod(dir.c_str(), 0700);
    CV_CHECK(raw::check_private(dir));
  } else {
    CV_CHECK(raw::make_private_dir(dir));
  }

  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  manifest::Header& h = impl->m.header;
  h.vault_id = new_id();
  h.label = options.label;
  h.counter = 1;
  h.created_at = now();
  h.kdf = options.kdf;
  h.pin_salt = seal::random_bytes(seal::kSaltBytes);
  h.recovery_salt = seal::random_bytes(seal::kSaltBytes);
  h.recovery_chosen = recovery_chosen;
  SecureBytes vault_key = SecureBytes::random(seal::kKeyBytes);
  if (pin) {
    CV_TRY(pin_key, seal::pin_key(*pin, h.pin_salt, h.kdf));
    h.pin_wrap = seal::seal(pin_key, vault_key.span(), manifest::wrap_ad(h.vault_id, "pin"));
  }
  CV_TRY(recovery_key, recovery_key_for(h, recovery));
  h.recovery_wrap =
      seal::seal(recovery_key, vault_key.span(), manifest::wrap_ad(h.vault_id, "recovery"));
  impl->set_vault_key(std::move(vault_key));

  if (::mkdir(impl->objects_dir().c_str(), 0700) != 0)
    return fail(Code::kIo,
                "cannot create " + impl->objects_dir().string() + ": " + raw::errno_text(errno));
  CV_CHECK(pin_state::write(impl->pin_state_path(), h.vault_id, 0));
  CV_CHECK(raw::write_new(impl->dir / "lock", {}));
  // The manifest comes last: its presence is what makes the directory a vault.
  auto bytes = std::make_shared<const std::string>(manifest::serialize(impl->m, impl->mac_key));
  CV_CHECK(raw::write_atomic(impl->manifest_path(), seal::as_bytes(*bytes)));
  impl->source = manifest::source_of(std::move(bytes));
  impl->stamp = raw::stamp(impl->manifest_path());
  CV_TRY(owner, raw::owner_of(dir));
  impl->owner = owner;
  return impl;
}

Result<std::pair<Vault, SecureBytes>> Vault::init(const fs::path& dir, const SecureBytes& pin,
                                                  const InitOptions& options) {
  CV_CHECK(check_new_pin(pin, "the PIN"));
  SecureBytes recovery = seal::new_recovery_secret();
  CV_TRY(impl, create(dir, &pin, recovery, false, options));
  return std::pair{Vault(std::move(impl)), std::move(recovery)};
}

Result<Vault> Vault::init_for_security_officer(const fs::path& dir, const SecureBytes& so_pin,
                                               const InitOptions& options) {
  CV_CHECK(check_new_pin(so_pin, "the security officer's PIN"));
  CV_TRY(impl, create(dir, nullptr, so_pin, true, options));
  impl->by_recovery = true;
  return Vault(std::move(impl));
}

bool Vault::pin_initialized() const {
  (void)impl_->refresh();
  return !impl_->m.header.pin_wrap.empty();
}

Result<Vault> Vault::open(const fs::path& dir) {
  if (!sodium_ready()) return fail(Code::kCrypto, "libsodium failed to initialise");
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  std::error_code ec;
  if (!fs::exists(impl->manifest_path(), ec))
    return fail(Code::kNotFound, "no vault at " + dir.string(), Remedy::kInit);
  for (const fs::path& p :
       {dir, impl->manifest_path(), impl->objects_dir(), impl->pin_state_path()})
    CV_CHECK(raw::check_private(p));
  CV_TRY(owner, raw::owner_of(dir));
  impl->owner = owner;
  CV_CHECK(impl->load());
  return Vault(std::move(impl));
}

const fs::path& Vault::dir() const {
  return impl_->dir;
}
std::string Vault::label() const {
  (void)impl_->refresh();
  return impl_->m.header.label;
}
uid_t Vault::owner_uid() const {
  return impl_->owner;
}
uint64_t Vault::commit_counter() const {
  return impl_->m.header.counter;
}

namespace {
Vault::Stamp public_stamp(const raw::Stamp& s) {
  return {static_cast<uint64_t>(s.inode), s.mtime_ns, s.size};
}
}  // namespace

Vault::Stamp Vault::manifest_stamp() const {
  return public_stamp(impl_->stamp);
}

Vault::Stamp Vault::manifest_stamp_now(const std::filesystem::path& dir) {
  return public_stamp(raw::stamp(dir / "manifest"));
}

std::string Vault::id() const {
  return impl_->m.header.vault_id;
}
KdfParams Vault::kdf() const {
  return impl_->m.header.kdf;
}
Result<void> Vault::refresh() const {
  return impl_->refresh();
}

// --- PIN -------------------------------------------------------------------------------

int Vault::pin_failures() const {
  auto n = pin_state::read(impl_->pin_state_path(), impl_->m.header.vault_id);
  return n ? std::min(*n, kMaxPinFailures) : kMaxPinFailures;
}

bool Vault::unlocked() const {
  return impl_->unlocked();
}

void Vault::lock() {
  impl_->wipe_keys();
  impl_->damage.reset();  // a locked handle reads public data, which needs no MAC
  impl_->by_recovery = false;
}

// Adopts a vault key that just opened a wrap: the manifest in hand must now pass its MAC.
Result<void> Vault::Impl::adopt_key(SecureBytes key) {
  set_vault_key(std::move(key));
  auto ok = refresh();
  if (ok && unlocked()) ok = manifest::verify(source, mac_key, manifest_path());
  if (!ok) {
    // The handle was never unlocked on this data: it stays a public reader, not damaged.
    wipe_keys();
    damage.reset();
  }
  return ok;
}

Vault::Impl::Hashing Vault::Impl::hash_beside(Vault::Threads threads) const {
  if (threads != Vault::Threads::kTwo || source.format < 6 || !source.digest.empty()) return {};
  try {
    return {source.bytes,
            std::async(std::launch::async, [s = source] { return manifest::digest(s); })};
  } catch (...) {
    return {};  // no thread to be had: the MAC check hashes on this one
  }
}

void Vault::Impl::keep_digest(Hashing& hashing) const {
  if (!hashing.digest.valid()) return;
  try {
    auto hashed = hashing.digest.get();
    if (hashing.of == source.bytes) source.digest = std::move(hashed);
  } catch (...) {
    // Out of memory on the other thread: the MAC check hashes on this one.
  }
}

Result<void> Vault::unlock(const SecureBytes& pin, Threads threads) {
  Impl& v = *impl_;
  // No PIN is no attempt: nothing to count against the user.
  if (pin.empty())
    return fail(Code::kInvalidInput,
                "no PIN was given for " + v.where() + "; nothing was tried or counted");
  CV_CHECK(v.refresh());
  auto locked_out = [&] {
    return fail(Code::kPinLocked,
                v.where() + " is locked after " + std::to_string(kMaxPinFailures) + " wrong PINs",
                Remedy::kRecover);
  };
  if (v.m.header.pin_wrap.empty())
    return fail(Code::kPinLocked, v.where() + " has no user PIN yet", Remedy::kSetUserPin);
  CV_TRY(failures, pin_state::read(v.pin_state_path(), v.m.header.vault_id));
  if (failures >= kMaxPinFailures) return locked_out();
  // Argon2id runs outside the writer lock so that many programs can unlock at once; the
  // counter is re-read under the lock, so a PIN is never accepted after a lockout.
  const manifest::Header h = v.m.header;
  // The hash a format-6 MAC is taken over needs no key: computed beside Argon2id, it leaves
  // a MAC over 32 bytes to check after it, whatever the size of the vault.
  auto hashing = v.hash_beside(threads);
  CV_TRY(pin_key, seal::pin_key(pin, h.pin_salt, h.kdf));
  v.keep_digest(hashing);
  auto key = seal::open(pin_key, h.pin_wrap, manifest::wrap_ad(h.vault_id, "pin"));
  CV_TRY(guard, raw::WriterLock::acquire(v.dir));
  CV_TRY(now_failures, pin_state::read(v.pin_state_path(), h.vault_id));
  if (now_failures >= kMaxPinFailures) return locked_out();
  if (!key) {
    CV_CHECK(pin_state::write(v.pin_state_path(), h.vault_id, now_failures + 1));
    int left = kMaxPinFailures - now_failures - 1;
    if (left == 0) return locked_out();
    return fail(Code::kWrongPin, "wrong PIN for " + v.where() + "; " + std::to_string(left) +
                                     (left == 1 ? " attempt" : " attempts") +
                                     " left before it locks");
  }
  if (now_failures) CV_CHECK(pin_state::write(v.pin_state_path(), h.vault_id, 0));
  v.by_recovery = false;
  // Everything is authenticated from here on: the manifest by its MAC, each object by
  // the hash the manifest gives it, checked whenever it is read.
  return v.adopt_key(std::move(*key));
}

Result<void> Vault::change_pin(const SecureBytes& new_pin) {
  CV_CHECK(check_new_pin(new_pin, "the new PIN"));
  Impl& v = *impl_;
  CV_CHECK(v.require_unlocked("change the PIN"));
  auto salt = seal::random_bytes(seal::kSaltBytes);
  CV_TRY(pin_key, seal::pin_key(new_pin, salt, v.m.header.kdf));
  return v.transact([&](manifest::Manifest& m, Impl::Txn&) -> Result<void> {
    m.header.pin_salt = salt;
    m.header.pin_wrap =
        seal::seal(pin_key, v.vault_key.span(), manifest::wrap_ad(m.header.vault_id, "pin"));
    return {};
  });
}

Result<void> Vault::reset_pin(const SecureBytes& recovery, const SecureBytes* new_pin) {
  if (new_pin) CV_CHECK(check_new_pin(*new_pin, "the new PIN"));
  CV_CHECK(unlock_with_recovery(recovery));
  // The new PIN first: if it cannot be set, the lockout stays as it was.
  if (new_pin) CV_CHECK(change_pin(*new_pin));
  CV_TRY(guard, raw::WriterLock::acquire(impl_->dir));
  return pin_state::write(impl_->pin_state_path(), impl_->m.header.vault_id, 0);
}

Result<void> Vault::set_pin_after_recovery(const SecureBytes& new_pin) {
  if (!unlocked_with_recovery())
    return fail(Code::kLocked,
                "setting a PIN this way needs the vault unlocked with its recovery secret");
  CV_CHECK(check_new_pin(new_pin, "the new PIN"));
  CV_CHECK(change_pin(new_pin));
  CV_TRY(guard, raw::WriterLock::acquire(impl_->dir));
  return pin_state::write(impl_->pin_state_path(), impl_->m.header.vault_id, 0);
}

bool Vault::unlocked_with_recovery() const {
  return impl_->by_recovery && unlocked();
}

Result<void> Vault::unlock_with_recovery(const SecureBytes& recovery) {
  Impl& v = *impl_;
  CV_CHECK(v.refresh());
  const manifest::Header h = v.m.header;
  CV_TRY(recovery_key, recovery_key_for(h, recovery));
  auto key = seal::open(recovery_key, h.recovery_wrap, manifest::wrap_ad(h.vault_id, "recovery"));
  if (!key)
    return fail(Code::kWrongPin, "the recovery secret does not open " + v.where() +
                                     "; check it against the one `certvault init` printed");
  CV_CHECK(v.adopt_key(std::move(*key)));
  v.by_recovery = true;
  return {};
}

// --- reading -----------------------------------------------------------------------------

std::vector<Entry> Vault::entries() const {
  (void)impl_->refresh();
  std::vector<Entry> out;
  out.reserve(impl_->m.entries.size());
  for (const auto& e : impl_->m.entries) out.push_back(to_entry(*e));
  return out;
}

std::optional<Entry> Vault::find(std::string_view nickname) const {
  (void)impl_->refresh();
  const auto* e = impl_->entry(nickname);
  if (!e) return std::nullopt;
  return to_entry(*e);
}

std::optional<Entry> Vault::find_by_key_id(std::string_view key_id) const {
  (void)impl_->refresh();
  impl_->index_ids();
  auto it = impl_->by_key_id.find(key_id);
  if (it == impl_->by_key_id.end()) return std::nullopt;
  return to_entry(*impl_->m.entries[it->second]);
}

std::optional<Entry> Vault::find_by_fingerprint(std::string_view fp) const {
  (void)impl_->refresh();
  impl_->index_ids();
  auto it = impl_->by_fingerprint.find(fp);
  if (it == impl_->by_fingerprint.end()) return std::nullopt;
  return to_entry(*impl_->m.entries[it->second]);
}

Policy Vault::policy() const {
  (void)impl_->refresh();
  return impl_->m.header.policy;
}

std::vector<CaInfo> Vault::cas() const {
  (void)impl_->refresh();
  std::vector<CaInfo> out;
  for (const auto& c : impl_->m.cas)
    if (c.info.active)
      out.insert(out.begin(), c.info);
    else
      out.push_back(c.info);
  return out;
}

std::optional<CaInfo> Vault::active_ca() const {
  (void)impl_->refresh();
  const auto* c = impl_->active_ca();
  if (!c) return std::nullopt;
  return c->info;
}

Result<std::vector<uint8_t>> Vault::certificate_der(std::string_view nickname,
                                                    std::optional<uint32_t> generation) const {
  CV_CHECK(impl_->refresh());
  CV_TRY(found, impl_->resolve(nickname, generation));
  CV_TRY(o, impl_->object(*found.first, *found.second));
  if (o.certificate.empty())
    return fail(Code::kRefused, "'" + found.first->nickname + "' has no certificate yet",
                Remedy::kAttach, found.first->nickname);
  return o.certificate;
}

Result<std::vector<std::vector<uint8_t>>> Vault::chain_der(
    std::string_view nickname, std::optional<uint32_t> generation) const {
  CV_CHECK(impl_->refresh());
  CV_TRY(found, impl_->resolve(nickname, generation));
  CV_TRY(o, impl_->object(*found.first, *found.second));
  return o.chain;
}

Result<std::vector<uint8_t>> Vault::public_key_der(std::string_view nickname,
                                                   std::optional<uint32_t> generation) const {
  CV_CHECK(impl_->refresh());
  CV_TRY(found, impl_->resolve(nickname, generation));
  CV_TRY(o, impl_->object(*found.first, *found.second));
  return o.public_key;
}

Result<std::vector<uint8_t>> Vault::ca_certificate_der() const {
  CV_CHECK(impl_->refresh());
  const auto* ca = impl_->active_ca();
  if (!ca)
    return fail(Code::kNotFound, impl_->where() +
                                     " has no CA; create one with `certvault ca "
                                     "create --end-date DATE`");
  CV_TRY(o, impl_->object(*ca));
  return o.certificate;
}

Result<std::shared_ptr<const SigningKey>> Vault::signing_key(
    std::string_view nickname, std::optional<uint32_t> generation) const {
  CV_CHECK(impl_->require_unlocked("use a private key"));
  CV_CHECK(impl_->refresh());
  if (const auto* record = impl_->entry(nickname)) {
    // The status rules every front end applies: a disabled entry signs with none of its
    // generations, a replaced one only until its own notAfter.
    const Entry e = to_entry(*record);
    GenerationWanted wanted;
    wanted.number = generation;
    CV_TRY(g, resolve_generation(e, wanted, impl_->where(), now()));
    generation = g->number;
  }
  // The key of the generation just checked, at the same commit (private_key would read
  // the manifest again).
  CV_TRY(found, impl_->resolve(nickname, generation));
  CV_TRY(o, impl_->object(*found.first, *found.second));
  CV_TRY(key, impl_->open_key(o));
  CV_TRY(type, keys::type_of(key.get()));
  return std::make_shared<const SigningKey>(std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free),
                                            type);
}

Result<PrivateKey> Vault::private_key(std::string_view nickname,
                                      std::optional<uint32_t> generation) const {
  CV_CHECK(impl_->require_unlocked("use a private key"));
  CV_CHECK(impl_->refresh());
  CV_TRY(found, impl_->resolve(nickname, generation));
  CV_TRY(o, impl_->object(*found.first, *found.second));
  CV_TRY(key, impl_->open_key(o));
  return PrivateKey(key.release());
}

}  // namespace certvault

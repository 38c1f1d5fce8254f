#include "served.h"

#include <json/json.h>
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <future>

#include "access.h"
#include "access_edit.h"
#include "ossl.h"
#include "owner_ops.h"
#include "renewal.h"
#include "renewal_pass.h"
#include "signing.h"
#include "uri.h"

namespace certvault::agent {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kListPage = 500;

std::string compact(const Json::Value& v) {
  Json::StreamWriterBuilder w;
  w["indentation"] = "";
  w["emitUTF8"] = true;
  return Json::writeString(w, v);
}

Frame ok() {
  return Frame(Type::kOk);
}

std::span<const uint8_t> bytes_of(std::string_view v) {
  return {reinterpret_cast<const uint8_t*>(v.data()), v.size()};
}

bool is_owner(uid_t owner, const PeerInfo& peer) {
  return peer.id.uid == owner || peer.id.uid == 0;
}

}  // namespace

// One served vault: its handle and what the agent keeps while it is unlocked.
class ServedVault {
 public:
  explicit ServedVault(Vault v, fs::path canonical)
      : vault_(std::move(v)), path_(std::move(canonical)) {
    label_ = vault_.label();
    id_ = vault_.id();
    struct stat st {};
    owner_ = ::stat(path_.c_str(), &st) == 0 ? st.st_uid : 0;
  }

  const fs::path& path() const { return path_; }
  const std::string& label() const { return label_; }
  const std::string& id() const { return id_; }
  uid_t owner() const { return owner_; }
  bool names(std::string_view name) const {
    if (name == label_ || name == id_ || name == path_.native()) return true;
    if (!name.starts_with('/')) return false;
    std::error_code ec;
    return fs::weakly_canonical(fs::path(name), ec) == path_ && !ec;
  }

  std::string locked_message() const {
    return "vault '" + label_ + "' is locked; run certvault unlock";
  }

  Result<void> unlock(const SecureBytes& pin, std::optional<std::chrono::seconds> ttl) {
    bool already = false;
    {
      std::lock_guard lock(mu_);
      already = vault_.unlocked();
    }
    if (already) {
      // A new TTL needs the PIN as much as the first unlock did (and counts a wrong one);
      // checked on a handle of its own, so that signing goes on meanwhile.
      CV_TRY(check, Vault::open(path_));
      CV_CHECK(check.unlock(pin, Vault::Threads::kTwo));
    }
    std::lock_guard lock(mu_);
    if (!vault_.unlocked()) CV_CHECK(vault_.unlock(pin, Vault::Threads::kTwo));
    unlocked_at_ = now();
    deadline_ = ttl && ttl->count() > 0 ? std::optional(Clock::now() + *ttl) : std::nullopt;
    due_at_ = deadline_ ? deadline_->time_since_epoch().count() : 0;
    return {};
  }

  void lock() {
    std::lock_guard lock(mu_);
    lock_locked();
  }

  bool expire_if_due() {
    // Checked before every request: no lock until it is due.
    const auto due = due_at_.load(std::memory_order_relaxed);
    if (due == 0 || Clock::now().time_since_epoch().count() < due) return false;
    std::lock_guard lock(mu_);
    if (!vault_.unlocked() || !deadline_ || Clock::now() < *deadline_) return false;
    lock_locked();
    return true;
  }

  // An entry as this peer may see it: refreshed, found, and allowed.
  Result<Entry> entry_for(const std::string& nickname, const PeerInfo& peer, bool listing) {
    CV_CHECK(vault_.refresh());
    auto e = vault_.find(nickname);
    if (!e)
      return fail(Code::kNotFound,
                  "no entry '" + nickname + "' in vault '" + label_ + "' served by the agent");
    if (listing && e->listed_publicly) return *e;
    auto d = decide_access(*e, owner_, peer.id);
    if (!d.allowed)
      return fail(Code::kRefused, "the certvault agent refuses uid " + std::to_string(peer.id.uid) +
                                      " the key '" + nickname + "' of vault '" + label_ +
                                      "': " + d.reason +
                                      "; the vault owner can allow it with certvault access");
    return *e;
  }

  // Each keystore lookup refreshes the vault, so another process's commit between two of a
  // request's lookups would mix two states: an entry admitted under its access rules, then
  // a certificate or key found under its nickname in the next state (the entry deleted and
  // the nickname given to a new one), or the keystore's "did you mean" naming nicknames
  // this peer may not see. A request's lookups are made again until they all saw the same
  // commit: three tries, then one line.
  template <class Lookups>
  auto at_one_commit(Lookups&& lookups) -> decltype(lookups()) {
    for (int attempt = 0; attempt < 3; ++attempt) {
      CV_CHECK(vault_.refresh());
      const uint64_t before = vault_.commit_counter();
      auto r = lookups();
      if (vault_.commit_counter() == before) return r;
    }
    return fail(Code::kIo, "vault '" + label_ +
                               "' changed three times during one request to the agent; try again");
  }

  Result<Frame> resolve(const Message& m, const PeerInfo& peer) {
    std::lock_guard lock(mu_);
    return at_one_commit([&] { return resolve_locked(m, peer); });
  }

  Result<Frame> resolve_locked(const Message& m, const PeerInfo& peer) {
    const std::string nickname = m.text(Tag::kNickname);
    CV_TRY(e, entry_for(nickname, peer, true));
    GenerationWanted wanted;
    if (auto number = m.get_u64(Tag::kGeneration)) {
      if (*number > UINT32_MAX)
        return fail(Code::kNotFound,
                    "'" + nickname + "' has no generation " + std::to_string(*number) +
                        " in vault '" + label_ + "'",
                    Remedy::kShowGenerations, nickname);
      wanted.number = static_cast<uint32_t>(*number);
    } else if (auto serial = m.get(Tag::kSerial)) {
      wanted.serial = std::string(*serial);
    }
    CV_TRY(g, resolve_generation(e, wanted, "vault '" + label_ + "'", now()));
    CV_TRY(cert, vault_.certificate_der(nickname, g->number));
    CV_TRY(chain, vault_.chain_der(nickname, g->number));
    CV_TRY(spki, vault_.public_key_der(nickname, g->number));
    Frame f = ok();
    f.add_u64(Tag::kGeneration, g->number);
    f.add(Tag::kKeyType, to_string(g->key_type));
    f.add(Tag::kKeyId, g->key_id);
    f.add(Tag::kSerial, g->serial);
    f.add(Tag::kCertificate, cert);
    for (const auto& c : chain) f.add(Tag::kChain, c);
    f.add(Tag::kSpki, spki);
    Json::Value info;
    info["locked"] = !vault_.unlocked();
    info["label"] = label_;
    info["nickname"] = e.nickname;
    f.add(Tag::kJson, compact(info));
    return f;
  }

  Result<Frame> list(const Message& m, const PeerInfo& peer) {
    const size_t offset = m.get_u64(Tag::kOffset).value_or(0);
    std::lock_guard lock(mu_);
    CV_CHECK(vault_.refresh());
    const auto entries = vault_.entries();
    Json::Value out;
    out["label"] = label_;
    out["locked"] = !vault_.unlocked();
    out["counter"] = static_cast<Json::UInt64>(vault_.commit_counter());
    Json::Value& list = out["entries"] = Json::Value(Json::arrayValue);
    size_t i = offset;
    const Time t = now();
    for (; i < entries.size() && list.size() < kListPage; ++i) {
      const Entry& e = entries[i];
      if (!e.listed_publicly && !decide_access(e, owner_, peer.id).allowed) continue;
      Json::Value je;
      je["id"] = e.id;
      je["nickname"] = e.nickname;
      Json::Value& gens = je["generations"] = Json::Value(Json::arrayValue);
      for (const auto& g : e.generations) {
        if (!check_usable(e, g, t)) continue;
        Json::Value jg;
        jg["number"] = g.number;
        jg["status"] = std::string(to_string(g.status));
        jg["key_type"] = std::string(to_string(g.key_type));
        jg["key_id"] = g.key_id;
        jg["serial"] = g.serial;
        jg["not_before"] = static_cast<Json::Int64>(g.not_before);
        jg["not_after"] = static_cast<Json::Int64>(g.not_after);
        jg["imported"] = g.key_imported;
        jg["exported"] = g.exported_at != 0;
        gens.append(jg);
      }
      list.append(je);
    }
    if (i < entries.size()) out["next"] = static_cast<Json::UInt64>(i);
    Frame f = ok();
    f.add(Tag::kJson, compact(out));
    return f;
  }

  // Resolves, checks and returns the key to sign with; the caller signs without the lock.
  struct Signer {
    std::shared_ptr<const SigningKey> key;
  };
  Result<Signer> signer(const Message& m, const PeerInfo& peer, AuditEvent& ev,
                        std::optional<LastSigner>& last) {
    const std::string nickname = m.text(Tag::kNickname);
    const auto number = m.get_u64(Tag::kGeneration);
    const std::string key_id = m.text(Tag::kKeyId);
    ev.nickname = nickname;
    ev.key_id = key_id;
    if (!number || *number == 0 || *number > UINT32_MAX)
      return fail(Code::kInvalidInput, "a signature request without a generation");
    ev.generation = static_cast<uint32_t>(*number);
    // The key this connection signed with last, while the manifest is still the one it was
    // admitted from (one stat) and the cache has not been dropped since: no lock, so that
    // connections sign side by side. Locking the vault (by command or TTL) drops the cache,
    // which ends this even while another connection's signature still holds the key.
    if (last && last->vault == this && last->generation == *number && last->nickname == nickname &&
        last->key_id == key_id && last->keys_epoch == keys_epoch_.load(std::memory_order_acquire) &&
        Vault::manifest_stamp_now(path_) == last->stamp) {
      auto key = last->key.lock();
      if (const Generation* g = last->entry.generation(last->generation); key && g) {
        CV_CHECK(check_usable(last->entry, *g, now()));
        return Signer{std::move(key)};
      }
    }
    last.reset();
    std::lock_guard lock(mu_);
    auto s = at_one_commit([&] { return signer_locked(nickname, key_id, *number, peer, last); });
    if (!s) last.reset();  // a try that saw two commits may have set it
    return s;
  }

  Result<Signer> signer_locked(const std::string& nickname, const std::string& key_id,
                               uint64_t number, const PeerInfo& peer,
                               std::optional<LastSigner>& last) {
    last.reset();
    if (!vault_.unlocked()) return fail(Code::kLocked, locked_message());
    CV_TRY(e, entry_for(nickname, peer, false));
    const Generation* g = e.generation(static_cast<uint32_t>(number));
    if (!g || g->key_id != key_id)
      return fail(Code::kNotFound, "'" + nickname + "' in vault '" + label_ +
                                       "' has no such key any more; reload the program");
    CV_CHECK(check_usable(e, *g, now()));
    // After a commit (here or by another process), keys of entries deleted, disabled or
    // replaced must not stay decrypted: the cache starts again.
    if (keys_for_ != vault_.commit_counter()) {
      drop_keys_locked();
      keys_for_ = vault_.commit_counter();
    }
    const std::string cache_key = e.id + "/" + std::to_string(g->number);
    auto it = keys_.find(cache_key);
    if (it == keys_.end()) {
      CV_TRY(key, vault_.signing_key(nickname, g->number));
      it = keys_.emplace(cache_key, std::move(key)).first;
    }
    last = LastSigner{this,
                      nickname,
                      key_id,
                      g->number,
                      vault_.manifest_stamp(),
                      keys_epoch_.load(std::memory_order_relaxed),
                      std::move(e),
                      it->second};
    return Signer{it->second};
  }

  // A PIN a program gave anyway (PKCS#11 C_Login): checked on a handle of its own, so a
  // wrong one counts as a try like any other, and the agent's state does not change.
  Result<void> check_pin(const SecureBytes& pin, const PeerInfo& peer) {
    {
      // A peer with no key here may not spend the vault's PIN tries (ten lock it).
      std::lock_guard lock(mu_);
      CV_CHECK(vault_.refresh());
      bool admitted = is_owner(owner_, peer);
      for (const auto& e : vault_.entries())
        admitted = admitted || decide_access(e, owner_, peer.id).allowed;
      if (!admitted)
        return fail(Code::kRefused, "the certvault agent refuses uid " +
                                        std::to_string(peer.id.uid) + " a PIN check of vault '" +
                                        label_ + "': no entry's rule admits it");
    }
    CV_TRY(check, Vault::open(path_));
    return check.unlock(pin, Vault::Threads::kTwo);
  }

  // The owner's `certvault access`, made here because this agent holds the vault unlocked.
  Result<void> change_access(const std::string& nickname, const cli::AccessEdit& edit) {
    std::lock_guard lock(mu_);
    if (!vault_.unlocked()) return fail(Code::kLocked, locked_message());
    CV_TRY(changed, cli::apply_access_edit(vault_, nickname, edit));
    (void)changed;
    return {};
  }

  // One of the owner's CLI commands, made here because this agent holds the vault unlocked.
  Result<Frame> owner_op(const Message& m, AuditEvent& ev, std::vector<cli::AfterChange>& hooks) {
    std::lock_guard lock(mu_);
    if (!vault_.unlocked()) return fail(Code::kLocked, locked_message());
    CV_CHECK(vault_.refresh());
    auto r = carry_out_owner_op(vault_, m, ev, hooks, &ari_);
    // A deleted entry's or a replaced generation's key leaves memory; the rest reload.
    drop_keys_locked();
    return r;
  }

  Result<Frame> token(const PeerInfo&) {
    std::lock_guard lock(mu_);
    // A manifest changed behind the vault's back is damage, and said so. A commit of another
    // process read halfway ("changed while reading it") passes: the module would otherwise
    // stop using the agent for good over it.
    if (auto fresh = vault_.refresh(); !fresh && fresh.error().code == Code::kTampered)
      return std::unexpected(fresh.error());
    Json::Value v;
    v["label"] = label_;
    v["id"] = id_;
    v["path"] = path_.string();
    v["locked"] = !vault_.unlocked();
    v["pin_failures"] = vault_.pin_failures();
    v["max_pin_failures"] = Vault::kMaxPinFailures;
    v["owner_uid"] = static_cast<Json::UInt>(owner_);
    v["counter"] = static_cast<Json::UInt64>(vault_.commit_counter());
    Frame f = ok();
    f.add(Tag::kJson, compact(v));
    return f;
  }

  Json::Value status() {
    std::lock_guard lock(mu_);
    Json::Value v;
    v["label"] = label_;
    v["id"] = id_;
    v["path"] = path_.string();
    v["unlocked"] = vault_.unlocked();
    if (vault_.unlocked()) {
      v["unlocked_at"] = static_cast<Json::Int64>(unlocked_at_);
      if (deadline_) {
        auto left = std::chrono::duration_cast<std::chrono::seconds>(*deadline_ - Clock::now());
        v["ttl_left"] = static_cast<Json::Int64>(std::max<int64_t>(0, left.count()));
      } else {
        v["ttl_left"] = Json::Value::null;
      }
    }
    v["clients"] = static_cast<Json::UInt64>(clients.load());
    v["signatures"] = static_cast<Json::UInt64>(signatures.load());
    v["refusals"] = static_cast<Json::UInt64>(refusals.load());
    // Renewal rules come with the renewal work; until then, what `check` calls soon.
    uint64_t due = 0;
    if (vault_.refresh()) {
      const Time t = renewal_now();
      const Policy policy = vault_.policy();
      for (const auto& e : vault_.entries())
        if (auto plan = plan_renewal(e, policy); plan && plan->due && *plan->due <= t) ++due;
    }
    v["due_for_renewal"] = static_cast<Json::UInt64>(due);
    Json::Value renewal(Json::objectValue);
    renewal["passes"] = static_cast<Json::UInt64>(passes_);
    renewal["passes_while_locked"] = static_cast<Json::UInt64>(passes_while_locked_);
    renewal["last_pass"] = last_pass_ ? Json::Value(format_time(last_pass_)) : Json::Value();
    v["renewal"] = renewal;
    return v;
  }

  // The renewal pass over this vault when it is unlocked (nullopt when locked); the
  // renewed entries' commands go to `hooks`.
  std::optional<Result<cli::RenewalPass>> renew_due(std::vector<cli::AfterChange>& hooks,
                                                    const std::atomic<bool>& stopping) {
    {
      std::lock_guard lock(mu_);
      if (!vault_.unlocked()) {
        ++passes_while_locked_;
        return std::nullopt;
      }
    }
    // What is due is planned on a handle of the pass's own that reads public data only,
    // without the lock signing takes: over 10,000 entries that takes about 10 ms, which
    // the first signature after an unlock would otherwise wait for. ACME renewal
    // information (RFC 9773) is asked for there too, so that signing does not wait for a
    // CA; the pass then reads it from memory.
    // It runs on a thread of its own at nice 10, so that signing on the same cores goes
    // first: an agent that was just unlocked otherwise served its first signature a
    // core's time slice late, half the time, on 2 vCPUs. A thread of its own, because a
    // thread cannot take back without privilege the priority it gave up, and the renewals
    // and their commands run at the agent's own.
    std::vector<std::string> notes;
    auto plan_due = [&]() -> Result<cli::RenewalPass> {
      errno = 0;
      const int nice = ::getpriority(PRIO_PROCESS, 0);  // this thread's, on Linux
      if (errno == 0 && nice < 10) ::setpriority(PRIO_PROCESS, 0, 10);
      CV_TRY(reader, Vault::open(path_));
      if (auto targets = cli::ari_targets(reader, renewal_now()); !targets.empty() && !stopping)
        notes = cli::fetch_renewal_info(targets, ari_, renewal_now());
      cli::PassRequest plan;
      plan.dry_run = true;
      plan.ari = &ari_;
      plan.fetch_ari = false;
      return cli::renewal_pass(reader, plan);
    };
    auto planned = [&]() -> Result<cli::RenewalPass> {
      try {
        return std::async(std::launch::async, plan_due).get();
      } catch (const std::system_error&) {
        return plan_due();  // no thread to be had: planned here, at the agent's priority
      }
    }();
    if (!planned) return planned;
    std::vector<std::string> due;
    for (const auto& o : planned->outcomes)
      if (o.kind != cli::RenewalOutcome::Kind::kHeldBack) due.push_back(o.nickname);

    std::unique_lock lock(mu_);
    if (!vault_.unlocked()) {
      ++passes_while_locked_;
      return std::nullopt;
    }
    ++passes_;
    last_pass_ = now();
    if (due.empty()) {
      cli::RenewalPass nothing;
      nothing.notes = std::move(notes);
      nothing.next_due = planned->next_due;
      return nothing;
    }
    cli::PassRequest request;
    request.ari = &ari_;
    request.fetch_ari = false;
    request.only = std::move(due);
    // Between two renewals the lock is let go, so that signing and lookups in this vault
    // wait for one renewal at a time, not for the whole pass.
    request.between = [&] {
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
      return vault_.unlocked() && !stopping;
    };
    auto pass = cli::renewal_pass(vault_, request);
    if (pass) {
      pass->notes.insert(pass->notes.begin(), notes.begin(), notes.end());
      for (const auto& o : pass->outcomes)
        if (o.kind == cli::RenewalOutcome::Kind::kRenewed) {
          drop_keys_locked();  // superseded keys reload (and keep signing) from the vault
          if (o.after) hooks.push_back(*o.after);
        }
    }
    return pass;
  }

  std::atomic<uint64_t> clients{0}, signatures{0}, refusals{0};

 private:
  // Every connection's fast path (LastSigner) ends with it.
  void drop_keys_locked() {
    keys_.clear();  // EVP_PKEY_free wipes the private halves (at the last signature's end)
    keys_epoch_.fetch_add(1, std::memory_order_release);
  }

  void lock_locked() {
    drop_keys_locked();
    vault_.lock();
    deadline_.reset();
    due_at_ = 0;
  }

  mutable std::mutex mu_;
  Vault vault_;
  fs::path path_;
  std::string label_, id_;
  uid_t owner_ = 0;
  Time unlocked_at_ = 0;
  std::optional<Clock::time_point> deadline_;
  std::atomic<Clock::rep> due_at_{0};              // deadline_ as a count of Clock ticks; 0: none
  uint64_t passes_ = 0, passes_while_locked_ = 0;  // renewal passes (under mu_)
  Time last_pass_ = 0;
  uint64_t keys_for_ = 0;  // the commit counter the decrypted keys were checked against
  std::atomic<uint64_t> keys_epoch_{0};  // how many times keys_ was dropped
  std::map<std::string, std::shared_ptr<const SigningKey>> keys_;  // "entry id/generation"
  cli::AriCache ari_;  // the ACME CAs' renewal windows, kept across passes (its own lock)
};

Agent::Agent(Audit& audit) : audit_(audit) {}

Agent::~Agent() {
  {
    std::lock_guard lock(renew_mu_);
    stopping_ = true;
  }
  renew_cv_.notify_all();
  if (renewer_.joinable()) renewer_.join();
}

void Agent::renew_soon() {
  {
    std::lock_guard lock(renew_mu_);
    renew_now_ = true;
  }
  renew_cv_.notify_all();
}

void Agent::queue_hooks(std::vector<cli::AfterChange> hooks) {
  if (hooks.empty()) return;
  {
    std::lock_guard lock(renew_mu_);
    for (auto& h : hooks) hooks_.push_back(std::move(h));
  }
  renew_cv_.notify_all();
}

void Agent::renewer_loop() {
  ::pthread_setname_np(::pthread_self(), "certvault-renew");  // tests and ps tell it apart
  using SteadyClock = std::chrono::steady_clock;
  // Without a period, passes run only after unlocks: the next one is "never".
  auto after_period = [&] {
    return renew_every_ ? SteadyClock::now() + *renew_every_ : SteadyClock::time_point::max();
  };
  auto next = after_period();
  std::unique_lock lock(renew_mu_);
  while (!stopping_) {
    auto woken = [&] { return stopping_ || renew_now_ || !hooks_.empty(); };
    if (next == SteadyClock::time_point::max())
      renew_cv_.wait(lock, woken);
    else
      renew_cv_.wait_until(lock, next, woken);
    if (stopping_) break;
    const bool pass_due = renew_now_ || SteadyClock::now() >= next;
    renew_now_ = false;
    auto hooks = std::move(hooks_);
    hooks_.clear();
    lock.unlock();
    if (pass_due) {
      next = after_period();
      renew_pass();
      // The pass read each vault through a handle of its own (a second copy of its
      // entries, in this thread's malloc arena); give those pages back rather than keep
      // them resident until the next pass.
      ::malloc_trim(0);
    }
    run_hooks(std::move(hooks));
    lock.lock();
  }
}

void Agent::renew_pass() {
  PeerInfo self;
  self.pid = ::getpid();
  self.id.uid = ::geteuid();
  self.id.gid = ::getegid();
  std::vector<cli::AfterChange> hooks;
  for (const auto& v : vaults_) {
    if (stopping_) return;
    std::optional<Result<cli::RenewalPass>> pass;
    try {  // a CA's malformed answer must not end the agent; the next pass tries again
      pass = v->renew_due(hooks, stopping_);
    } catch (const std::exception& e) {
      Audit::journal(LOG_ERR, std::string("renewal pass failed: ") + e.what(), v->label());
      continue;
    }
    if (!pass) continue;  // locked
    if (!*pass) {
      Audit::journal(LOG_WARNING, "renewal pass failed: " + pass->error().message, v->label());
      continue;
    }
    for (const auto& note : (*pass)->notes) Audit::journal(LOG_WARNING, note, v->label());
    for (const auto& o : (*pass)->outcomes) {
      AuditEvent ev{v->label(), o.nickname, o.generation, "", "", "renew", true, ""};
      // Due before its rule because its CA asked (RFC 9773), and where the CA says why.
      const std::string early =
          !o.ari_at
              ? ""
              : " (ahead of its rule, as its CA's renewal information asks" +
                    (o.ari_explanation.empty() ? std::string() : ": " + o.ari_explanation) + ")";
      switch (o.kind) {
        case cli::RenewalOutcome::Kind::kRenewed:
          Audit::journal(LOG_NOTICE,
                         "renewed '" + o.nickname + "'" + early + ": generation " +
                             std::to_string(o.generation) + ", serial " + o.serial + ", until " +
                             format_time(o.not_after),
                         v->label());
          break;
        case cli::RenewalOutcome::Kind::kFailed:
        case cli::RenewalOutcome::Kind::kByHand:
          ev.ok = false;
          ev.reason = o.message;
          Audit::journal(LOG_WARNING,
                         "could not renew '" + o.nickname + "'" + early + ": " + o.message +
                             (o.retry_at ? "; next try after " + format_time(*o.retry_at) : ""),
                         v->label());
          break;
        case cli::RenewalOutcome::Kind::kHeldBack:
        case cli::RenewalOutcome::Kind::kWouldRenew:
          continue;  // nothing was tried
      }
      audit_.record(ev, self);
    }
  }
  run_hooks(std::move(hooks));
}

void Agent::run_hooks(std::vector<cli::AfterChange> hooks) {
  for (const auto& h : hooks) {
    if (stopping_) return;
    for (const auto& line : cli::carry_out(h, &stopping_))
      Audit::journal(line.find(" exited 0:") != std::string::npos ? LOG_NOTICE : LOG_WARNING,
                     "after the new certificate of '" + h.nickname + "': " + line, "");
  }
}

Result<void> Agent::serve(const ServeOptions& options) {
  for (const auto& dir : options.vaults) {
    std::error_code ec;
    fs::path canonical = fs::weakly_canonical(fs::absolute(dir, ec), ec);
    if (ec) return fail(Code::kIo, "cannot resolve the vault directory " + dir.string());
    bool dup = false;
    for (const auto& v : vaults_) dup |= v->path() == canonical;
    if (dup) continue;
    CV_TRY(v, Vault::open(canonical));
    vaults_.push_back(std::make_unique<ServedVault>(std::move(v), canonical));
  }
  if (vaults_.empty()) return fail(Code::kInvalidInput, "the agent has no vault to serve");
  default_ = vaults_.front().get();
  if (options.default_vault) {
    default_ = find(options.default_vault->string());
    if (!default_)
      return fail(Code::kInvalidInput,
                  "--default " + options.default_vault->string() + " is not a served vault");
  }
  default_ttl_ = options.default_ttl;
  renew_every_ = options.renew_every;
  if (!renewer_.joinable()) renewer_ = std::thread([this] { renewer_loop(); });
  return {};
}

ServedVault* Agent::find(std::string_view name) {
  if (name.empty()) return default_;
  for (const auto& v : vaults_)
    if (v->names(name)) return v.get();
  return nullptr;
}

Result<void> Agent::unlock_default(const SecureBytes& pin, const PeerInfo& self) {
  auto r = default_->unlock(pin, default_ttl_);
  audit_.record(
      {default_->label(), "", 0, "", "", "unlock", r.has_value(), r ? "" : r.error().message},
      self);
  if (r) {
    Audit::journal(LOG_NOTICE, "vault unlocked from its systemd credential", default_->label());
    renew_soon();
  }
  return r;
}

void Agent::expire() {
  for (const auto& v : vaults_)
    if (v->expire_if_due())
      Audit::journal(LOG_NOTICE, "vault locked: its time to live ran out", v->label());
}

void Agent::lock_all(const std::string& why) {
  for (const auto& v : vaults_) v->lock();
  Audit::journal(LOG_NOTICE, "every vault locked: " + why, "");
}

Frame Agent::status(const PeerInfo&) {
  Json::Value v;
  v["pid"] = static_cast<Json::Int>(::getpid());
  v["uid"] = static_cast<Json::UInt>(::geteuid());
  v["connections"] = static_cast<Json::UInt64>(connections.load());
  v["started_at"] = static_cast<Json::Int64>(
      std::chrono::duration_cast<std::chrono::seconds>(started_.time_since_epoch()).count());
  Json::Value& list = v["vaults"] = Json::Value(Json::arrayValue);
  for (const auto& s : vaults_) {
    Json::Value one = s->status();
    one["default"] = s.get() == default_;
    list.append(one);
  }
  Frame f = ok();
  f.add(Tag::kJson, compact(v));
  return f;
}

Frame Agent::handle(const Message& m, const PeerInfo& peer, ConnState& conn) {
  try {
    expire();
    if (m.type == Type::kStatus) return status(peer);
    if (m.type == Type::kLock && !m.get(Tag::kVault)) {
      for (const auto& v : vaults_)
        if (!is_owner(v->owner(), peer))
          return error_frame(to_wire(Code::kRefused),
                             "only root or the owner of every served vault may lock them all; "
                             "name one with --vault");
      lock_all("certvault lock --all by uid " + std::to_string(peer.id.uid));
      for (const auto& v : vaults_)
        audit_.record({v->label(), "", 0, "", "", "lock", true, ""}, peer);
      return ok();
    }
    const std::string name = m.text(Tag::kVault);
    ServedVault* v = find(name);
    // A change by the owner names the vault by its path: a label or id could be another
    // vault's that happens to match.
    const bool changes = m.type == Type::kOwner || m.type == Type::kSetAccess;
    if (!v || (changes && name != v->path().string()))
      return error_frame(ErrorCode::kNotServed,
                         "the certvault agent does not serve vault '" + name + "'");
    if (conn.touched.insert(v).second) ++v->clients;
    AuditEvent ev{v->label(), "", 0, "", "", "", true, ""};
    auto refuse = [&](const Error& e) {
      ev.ok = false;
      ev.reason = e.message;
      if (e.code == Code::kRefused || e.code == Code::kLocked) ++v->refusals;
      audit_.record(ev, peer);
      return error_frame(e);
    };
    switch (m.type) {
      case Type::kUnlock: {
        ev.action = "unlock";
        if (!is_owner(v->owner(), peer))
          return refuse({Code::kRefused,
                         "only the owner of vault '" + v->label() + "' or root may unlock it"});
        auto pin = m.get(Tag::kPin);
        if (!pin || pin->empty())
          return error_frame(to_wire(Code::kInvalidInput), "an unlock request without a PIN");
        SecureBytes secret(pin->data(), pin->size());
        std::optional<std::chrono::seconds> ttl = default_ttl_;
        // 0 is "no limit"; anything is kept within the CLI's own bound of ten years.
        if (auto t = m.get_u64(Tag::kTtl))
          ttl = std::chrono::seconds(std::min<uint64_t>(*t, 3650ull * 86400));
        auto r = v->unlock(secret, ttl);
        if (!r) return refuse(r.error());
        audit_.record(ev, peer);
        Audit::journal(LOG_NOTICE, "vault unlocked by uid " + std::to_string(peer.id.uid),
                       v->label());
        renew_soon();
        return ok();
      }
      case Type::kLock: {
        ev.action = "lock";
        if (!is_owner(v->owner(), peer))
          return refuse(
              {Code::kRefused, "only the owner of vault '" + v->label() + "' or root may lock it"});
        v->lock();
        audit_.record(ev, peer);
        Audit::journal(LOG_NOTICE, "vault locked by uid " + std::to_string(peer.id.uid),
                       v->label());
        return ok();
      }
      case Type::kResolve: {
        auto r = v->resolve(m, peer);
        if (!r) {
          ev.action = "resolve";
          ev.nickname = m.text(Tag::kNickname);
          if (r.error().code == Code::kRefused) return refuse(r.error());
          return error_frame(r.error());
        }
        return std::move(*r);
      }
      case Type::kList: {
        auto r = v->list(m, peer);
        return r ? std::move(*r) : error_frame(r.error());
      }
      case Type::kToken: {
        auto r = v->token(peer);
        return r ? std::move(*r) : error_frame(r.error());
      }
      case Type::kCheckPin: {
        ev.action = "check-pin";
        auto pin = m.get(Tag::kPin);
        if (!pin || pin->empty())
          return error_frame(to_wire(Code::kInvalidInput), "a PIN check without a PIN");
        SecureBytes secret(pin->data(), pin->size());
        auto r = v->check_pin(secret, peer);
        if (!r) return refuse(r.error());
        return ok();
      }
      case Type::kSetAccess: {
        ev.action = "access";
        ev.nickname = m.text(Tag::kNickname);
        if (!is_owner(v->owner(), peer))
          return refuse({Code::kRefused, "only the owner of vault '" + v->label() +
                                             "' or root may change who uses its keys"});
        auto edit = cli::AccessEdit::from_json(m.text(Tag::kJson));
        if (!edit) return error_frame(edit.error());
        auto r = v->change_access(ev.nickname, *edit);
        if (!r) return error_frame(r.error());
        ev.reason = edit->to_json();
        audit_.record(ev, peer);
        return ok();
      }
      case Type::kOwner: {
        ev.action = "owner";
        if (!is_owner(v->owner(), peer))
          return refuse({Code::kRefused, "only the owner of vault '" + v->label() +
                                             "' or root may have the agent change it"});
        std::vector<cli::AfterChange> hooks;
        auto r = v->owner_op(m, ev, hooks);
        queue_hooks(std::move(hooks));  // run unlocked, on the renewal thread
        if (!r) return refuse(r.error());
        audit_.record(ev, peer);
        return std::move(*r);
      }
      case Type::kSign: {
        ev.action = "sign";
        auto params = sign_params(m);
        if (!params) return refuse(params.error());
        ev.mechanism = std::string(to_string(params->mechanism)) +
                       (params->digest.empty() ? "" : "/" + params->digest);
        auto s = v->signer(m, peer, ev, conn.last);
        if (!s) return refuse(s.error());
        const auto data = m.get(Tag::kData).value_or(std::string_view());
        auto sig = s->key->sign(*params, bytes_of(data));
        if (!sig) return refuse(sig.error());
        ++v->signatures;
        audit_.record(ev, peer);  // before the answer: a signature given is a signature recorded
        Frame f = ok();
        f.add(Tag::kSignature, *sig);
        return f;
      }
      default:
        return error_frame(to_wire(Code::kInvalidInput), "not a request this agent takes");
    }
  } catch (const std::exception& e) {
    return error_frame(to_wire(Code::kIo), std::string("the agent failed: ") + e.what());
  }
}

void Agent::disconnected(ConnState& conn) {
  for (ServedVault* v : conn.touched) --v->clients;
  conn.touched.clear();
}

Result<SignParams> sign_params(const Message& m) {
  SignParams p;
  CV_TRY(mech, parse_sign_mechanism(m.text(Tag::kMechanism)));
  p.mechanism = mech;
  p.digest = m.text(Tag::kDigest);
  p.mgf1_digest = m.text(Tag::kMgf1Digest);
  if (auto s = m.get_u64(Tag::kSaltLength)) p.salt_length = static_cast<int64_t>(*s);
  return p;
}

}  // namespace certvault::agent

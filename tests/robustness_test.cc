// Failure behaviour: tampered files, concurrent writers, writers killed mid-commit.
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support.h"
#include "test_cli.h"
#include "test_vault.h"
#include "vault.h"

namespace cvtest {
namespace {

using certvault::Code;
using certvault::Vault;

// What a user of the vault gets after a change on disk: either a refusal (with its error),
// or data.
struct Verdict {
  bool refused = false;
  certvault::Error error;
  std::string stage;
};

template <typename T>
bool refused_at(const certvault::Result<T>& r, const std::string& stage, Verdict& v) {
  if (r) return false;
  v.refused = true;
  v.error = r.error();
  v.stage = stage;
  return true;
}

// Opens, unlocks and reads everything the vault held (`nicknames`), as any program would.
Verdict use_vault(const fs::path& dir, const std::vector<std::string>& nicknames) {
  Verdict v;
  auto opened = Vault::open(dir);
  if (refused_at(opened, "open", v)) return v;
  if (refused_at(opened->unlock(pin()), "unlock", v)) return v;
  if (refused_at(opened->ca_certificate_der(), "ca_certificate_der", v)) return v;
  for (const auto& nick : nicknames) {
    if (refused_at(opened->certificate_der(nick), "certificate_der " + nick, v)) return v;
    if (refused_at(opened->chain_der(nick), "chain_der " + nick, v)) return v;
    if (refused_at(opened->public_key_der(nick), "public_key_der " + nick, v)) return v;
    if (refused_at(opened->private_key(nick), "private_key " + nick, v)) return v;
  }
  return v;
}

class TamperTest : public VaultTest {
 protected:
  void SetUp() override {
    VaultTest::SetUp();
    if (HasFatalFailure()) return;
    issue("alpha", 100, certvault::KeyType::kEcP256);
    issue("beta", 100, certvault::KeyType::kEd25519);
    vault_.reset();  // every check below goes through a fresh handle
    clean_ = snapshot(dir_);
    ASSERT_FALSE(use_vault(dir_, nicknames_).refused) << "the clean vault must work";
  }

  // A change must make open fail with kTampered, unlock fail (kTampered; kWrongPin where
  // the changed bytes feed the PIN-derived key, which no one can tell from a wrong PIN),
  // or a following read fail with kTampered. The message names the vault directory.
  void ExpectDetected(const std::string& what) {
    SCOPED_TRACE(what);
    auto v = use_vault(dir_, nicknames_);
    ASSERT_TRUE(v.refused) << what << " was silently accepted";
    bool tampered = v.error.code == Code::kTampered;
    bool wrong_pin_at_unlock = v.stage == "unlock" && v.error.code == Code::kWrongPin;
    EXPECT_TRUE(tampered || wrong_pin_at_unlock)
        << what << ": " << v.stage << " failed with " << code_name(v.error.code) << ": "
        << v.error.message;
    if (tampered) {
      EXPECT_NE(v.error.message.find(dir_.string()), std::string::npos)
          << "message does not name the vault: " << v.error.message;
    }
  }

  Snapshot clean_;
  std::vector<std::string> nicknames_{"alpha", "beta"};
};

TEST_F(TamperTest, FlippedByteAnywhereIsDetected) {
  std::mt19937 rng(std::random_device{}());
  int checked = 0;
  for (const auto& [rel, content] : clean_.files) {
    if (content.empty()) continue;  // e.g. the lock file: nothing to flip
    std::set<size_t> positions{0, content.size() / 3, content.size() / 2, content.size() - 1};
    positions.insert(std::uniform_int_distribution<size_t>(0, content.size() - 1)(rng));
    positions.insert(std::uniform_int_distribution<size_t>(0, content.size() - 1)(rng));
    for (size_t pos : positions) {
      restore(dir_, clean_);
      std::string bad = content;
      bad[pos] = static_cast<char>(bad[pos] ^ 0x01);
      overwrite_in_place(dir_ / rel, bad);
      ExpectDetected(rel + " with byte " + std::to_string(pos) + " of " +
                     std::to_string(content.size()) + " flipped");
      ++checked;
    }
    restore(dir_, clean_);
    overwrite_in_place(dir_ / rel, content.substr(0, content.size() / 2));
    ExpectDetected(rel + " truncated to half");
  }
  EXPECT_GE(checked, 8) << "too few files in the vault to be a real check";
  restore(dir_, clean_);
  EXPECT_FALSE(use_vault(dir_, nicknames_).refused) << "restored vault must work again";
}

// A changed digit can take the Argon2id parameters out of range, too small to protect the
// PIN or large enough to exhaust the machine at unlock: damage that names the vault, found
// when the manifest is read, before any key derivation runs.
TEST_F(TamperTest, OutOfRangeKdfParametersAreDamageFoundAtOpen) {
  for (const std::string field : {"\"ops\":", "\"mem\":"}) {
    for (const std::string value : {"0", "99999999999999"}) {
      restore(dir_, clean_);
      std::string manifest = clean_.files.at("manifest");
      const size_t at = manifest.find(field);
      ASSERT_NE(at, std::string::npos) << field;
      const size_t digits = manifest.find_first_not_of("0123456789", at + field.size());
      manifest.replace(at + field.size(), digits - at - field.size(), value);
      overwrite_in_place(dir_ / "manifest", manifest);
      ExpectDetected("manifest with " + field + " " + value);
      EXPECT_EQ(use_vault(dir_, nicknames_).stage, "open") << field << " " << value;
    }
  }
}

// A vault made by C_InitToken has an empty pin_wrap until its first PIN; a damaged field
// name must not pass for that state.
TEST_F(TamperTest, RenamedKeyFieldIsDamageNotAMissingPin) {
  for (const std::string field : {"\"pin_wrap\"", "\"recovery_wrap\""}) {
    restore(dir_, clean_);
    std::string manifest = clean_.files.at("manifest");
    const size_t at = manifest.find(field);
    ASSERT_NE(at, std::string::npos) << field;
    manifest[at + 3] ^= 0x01;
    overwrite_in_place(dir_ / "manifest", manifest);
    ExpectDetected("manifest with " + field + " renamed");
  }
}

// Files that appear when an entry is issued (in the per-generation subdirectory).
std::vector<std::string> new_object_files(const Snapshot& before, const Snapshot& after) {
  std::vector<std::string> out;
  for (const auto& [rel, content] : after.files)
    if (!before.files.contains(rel) && rel.find('/') != std::string::npos) out.push_back(rel);
  return out;
}

TEST(Tamper, SwappedGenerationFileIsDetected) {
  TempDir tmp;
  auto dir = tmp / "vault";
  auto made = Vault::init(dir, pin(), cheap_init());
  ASSERT_TRUE(made) << why(made);
  auto& vault = made->first;
  certvault::CaRequest ca;
  ca.not_after = certvault::now() + 365 * kDay;
  ASSERT_TRUE(vault.create_ca(ca));
  certvault::IssueRequest req;
  req.not_after = certvault::now() + 30 * kDay;
  auto s0 = snapshot(dir);
  req.nickname = "alpha";
  ASSERT_TRUE(vault.create(req));
  auto s1 = snapshot(dir);
  req.nickname = "beta";
  ASSERT_TRUE(vault.create(req));
  auto s2 = snapshot(dir);
  auto alpha_files = new_object_files(s0, s1);
  auto beta_files = new_object_files(s1, s2);
  ASSERT_EQ(alpha_files.size(), 1u) << "expected one generation file per entry";
  ASSERT_EQ(beta_files.size(), 1u) << "expected one generation file per entry";

  for (bool forward : {true, false}) {
    restore(dir, s2);
    const auto& from = forward ? alpha_files[0] : beta_files[0];
    const auto& to = forward ? beta_files[0] : alpha_files[0];
    overwrite_in_place(dir / to, s2.files.at(from));
    auto opened = Vault::open(dir);
    certvault::Result<void> outcome;
    if (!opened) {
      outcome = std::unexpected(opened.error());
    } else {
      outcome = opened->unlock(pin());
      std::string victim = forward ? "beta" : "alpha";
      if (outcome) {
        auto key = opened->private_key(victim);
        if (!key) outcome = std::unexpected(key.error());
      }
      if (outcome) {
        auto cert = opened->certificate_der(victim);
        if (!cert) outcome = std::unexpected(cert.error());
      }
    }
    ASSERT_FALSE(outcome) << "a swapped generation file was accepted (" << from << " over " << to
                          << ")";
    EXPECT_EQ(outcome.error().code, Code::kTampered) << why(outcome);
    EXPECT_NE(outcome.error().message.find(dir.string()), std::string::npos)
        << outcome.error().message;
  }
}

TEST_F(CliTest, TamperedGenerationFileFailsCommandWithExit7) {
  auto before = snapshot(vault_);
  ok({"create", "api", "--end-date", "+30d"});
  auto after = snapshot(vault_);
  auto files = new_object_files(before, after);
  ASSERT_FALSE(files.empty());
  for (const auto& rel : files) {
    std::string bad = after.files.at(rel);
    bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x01);
    overwrite_in_place(vault_ / rel, bad);
  }
  auto r = cv({"export", "api", "-o", (tmp_ / "api.p12").string()});
  ExpectOneLineFailure(r, {7});
  EXPECT_NE(r.err.find(vault_.string()), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(tmp_ / "api.p12"));
}

// ---------------------------------------------------------------------------------------
// Concurrency

// Waits for a child with a deadline; kills it when the deadline passes. Returns the
// wait status, or -1 on timeout.
int wait_bounded(pid_t pid, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (true) {
    pid_t got = ::waitpid(pid, &status, WNOHANG);
    if (got == pid) return status;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

TEST_F(VaultTest, TwoProcessesCreatingAtOnceLoseNothing) {
  constexpr int kPerProcess = 15;
  vault_.reset();
  std::vector<pid_t> children;
  for (int p = 0; p < 2; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      // Child: no gtest here; report through the exit status and stderr.
      auto v = Vault::open(dir_);
      if (!v || !v->unlock(pin())) _exit(10);
      for (int i = 0; i < kPerProcess; ++i) {
        certvault::IssueRequest req;
        req.nickname = "p" + std::to_string(p) + "-" + std::to_string(i);
        req.not_after = certvault::now() + 30 * kDay;
        auto made = v->create(req);
        if (!made) {
          std::fprintf(stderr, "child %d: %s: %s\n", p, req.nickname.c_str(),
                       made.error().message.c_str());
          _exit(11);
        }
        (void)v->entries();
      }
      // The same long-lived handle must come to see the other writer's entries too.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
      while (v->entries().size() < 2u * kPerProcess) {
        if (std::chrono::steady_clock::now() > deadline) {
          std::fprintf(stderr, "child %d sees only %zu entries\n", p, v->entries().size());
          _exit(12);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      for (int i = 0; i < kPerProcess; ++i)
        if (!v->private_key("p" + std::to_string(1 - p) + "-" + std::to_string(i))) _exit(13);
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = wait_bounded(pid, std::chrono::seconds(240));
    ASSERT_NE(status, -1) << "writer hung";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "writer failed: " << status;
  }
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_TRUE(v->unlock(pin()));
  EXPECT_EQ(v->entries().size(), 2u * kPerProcess);
  for (int p = 0; p < 2; ++p)
    for (int i = 0; i < kPerProcess; ++i) {
      std::string nick = "p" + std::to_string(p) + "-" + std::to_string(i);
      EXPECT_TRUE(v->find(nick)) << nick << " lost";
      EXPECT_TRUE(v->private_key(nick)) << nick << " key lost";
    }
}

TEST_F(VaultTest, ReadersNeverSeeHalfWrittenVault) {
  constexpr int kEntries = 20;
  vault_.reset();
  pid_t writer = ::fork();
  ASSERT_GE(writer, 0);
  if (writer == 0) {
    auto v = Vault::open(dir_);
    if (!v || !v->unlock(pin())) _exit(10);
    for (int i = 0; i < kEntries; ++i) {
      certvault::IssueRequest req;
      req.nickname = "w" + std::to_string(i);
      req.not_after = certvault::now() + 30 * kDay;
      if (!v->create(req)) _exit(11);
      if (i % 5 == 4 && !v->rotate("w0", {})) _exit(12);
    }
    _exit(0);
  }
  // Read as fast as possible while the writer commits; bounded by time and count.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  size_t seen = 0;
  int reads = 0, status = 0;
  bool writer_done = false;
  while (!writer_done && std::chrono::steady_clock::now() < deadline && reads < 100000) {
    writer_done = ::waitpid(writer, &status, WNOHANG) == writer;
    auto v = Vault::open(dir_);
    ASSERT_TRUE(v) << "read " << reads << ": " << why(v);
    auto entries = v->entries();
    EXPECT_GE(entries.size(), seen) << "entries went missing";
    seen = entries.size();
    for (const auto& e : entries) {
      auto der = v->certificate_der(e.nickname);
      ASSERT_TRUE(der) << e.nickname << ": " << why(der);
    }
    ++reads;
  }
  if (!writer_done) status = wait_bounded(writer, std::chrono::seconds(60));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "writer failed: " << status;
  auto v = Vault::open(dir_);
  ASSERT_TRUE(v);
  ASSERT_TRUE(v->unlock(pin()));
  EXPECT_EQ(v->entries().size(), static_cast<size_t>(kEntries));
  EXPECT_EQ(v->find("w0")->generations.size(), 1u + kEntries / 5);
  RecordProperty("reads", reads);
}

TEST_F(CliTest, TwoCliWritersAtOnceLoseNothing) {
  constexpr int kPerWriter = 15;
  std::vector<std::vector<RunResult>> results(2);
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w)
    writers.emplace_back([&, w] {
      for (int i = 0; i < kPerWriter; ++i)
        results[w].push_back(cv(
            {"create", "w" + std::to_string(w) + "-" + std::to_string(i), "--end-date", "+30d"}));
    });
  for (auto& t : writers) t.join();
  for (int w = 0; w < 2; ++w)
    for (int i = 0; i < kPerWriter; ++i)
      EXPECT_EQ(results[w][i].exit_code, 0) << "w" << w << "-" << i << ": " << results[w][i].err;
  auto listed = ok({"list"});
  auto v = Vault::open(vault_);
  ASSERT_TRUE(v) << why(v);
  ASSERT_TRUE(v->unlock(pin()));
  EXPECT_EQ(v->entries().size(), 2u * kPerWriter);
  for (int w = 0; w < 2; ++w)
    for (int i = 0; i < kPerWriter; ++i) {
      std::string nick = "w" + std::to_string(w) + "-" + std::to_string(i);
      EXPECT_NE(listed.out.find(nick), std::string::npos) << nick << " not listed";
      EXPECT_TRUE(v->private_key(nick)) << nick << " key lost";
    }
}

// ---------------------------------------------------------------------------------------
// Writers killed with SIGKILL

class KilledWriter : public CliTest {
 protected:
  // Starts the command, kills it after 0-50 ms; true when it had already exited 0.
  bool run_and_kill(const std::vector<std::string>& args, std::mt19937& rng) {
    std::vector<std::string> argv{cli(), "--vault", vault_.string(), "--pin-file",
                                  pin_file_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_t pid = spawn_quiet(argv);
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 50)(rng)));
    ::kill(pid, SIGKILL);
    int status = wait_bounded(pid, std::chrono::seconds(60));
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  // The vault opens after every kill, whatever the moment.
  void ExpectOpens(int iteration) {
    auto v = Vault::open(vault_);
    ASSERT_TRUE(v) << "after kill " << iteration << ": " << why(v);
  }

  unsigned seed_ = std::random_device{}();
};

TEST_F(KilledWriter, KilledCreateKeepsEveryCompletedEntry) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  std::mt19937 rng(seed_);
  std::vector<std::string> completed;
  for (int i = 0; i < 30; ++i) {
    std::string nick = "k" + std::to_string(i);
    if (run_and_kill({"create", nick, "--end-date", "+30d"}, rng)) completed.push_back(nick);
    ExpectOpens(i);
  }
  auto v = Vault::open(vault_);
  ASSERT_TRUE(v) << why(v);
  auto unlocked = v->unlock(pin());
  ASSERT_TRUE(unlocked) << why(unlocked);
  for (const auto& nick : completed) {
    auto key = v->private_key(nick);
    ASSERT_TRUE(key) << nick << " completed but: " << why(key);
    auto der = v->certificate_der(nick);
    ASSERT_TRUE(der) << why(der);
    EXPECT_EQ(X509_check_private_key(x509_from_der(*der).get(), key->get()), 1) << nick;
  }
  // Every entry the vault lists is whole, whichever runs it came from.
  for (const auto& e : v->entries()) {
    if (!e.current()) continue;
    EXPECT_TRUE(v->private_key(e.nickname)) << e.nickname;
  }
  // No stale lock: the vault still takes writes.
  auto after = cv({"create", "after-kills", "--end-date", "+30d"});
  EXPECT_EQ(after.exit_code, 0) << after.err;
  RecordProperty("completed", static_cast<int>(completed.size()));
}

TEST_F(KilledWriter, KilledRotateKeepsEntryUsable) {
  SCOPED_TRACE("seed " + std::to_string(seed_));
  std::mt19937 rng(seed_);
  ok({"create", "r", "--end-date", "+30d"});
  int completed = 0;
  for (int i = 0; i < 30; ++i) {
    if (run_and_kill({"rotate", "r"}, rng)) ++completed;
    ExpectOpens(i);
  }
  auto v = Vault::open(vault_);
  ASSERT_TRUE(v) << why(v);
  auto unlocked = v->unlock(pin());
  ASSERT_TRUE(unlocked) << why(unlocked);
  auto entry = v->find("r");
  ASSERT_TRUE(entry);
  ASSERT_TRUE(entry->current()) << "rotated entry has no current generation";
  EXPECT_GE(static_cast<int>(entry->generations.size()), 1 + completed)
      << "a completed rotation was lost";
  int active = 0;
  for (const auto& g : entry->generations) active += g.status == certvault::Status::kActive;
  EXPECT_EQ(active, 1) << "exactly one generation should be active";
  EXPECT_EQ(entry->current()->number, entry->newest()->number);
  auto key = v->private_key("r");
  ASSERT_TRUE(key) << why(key);
  auto der = v->certificate_der("r");
  ASSERT_TRUE(der) << why(der);
  EXPECT_EQ(X509_check_private_key(x509_from_der(*der).get(), key->get()), 1);
  auto after = cv({"rotate", "r"});
  EXPECT_EQ(after.exit_code, 0) << after.err;
}

}  // namespace
}  // namespace cvtest

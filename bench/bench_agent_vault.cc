// The agent serving a 10,000-entry vault (docs/PERFORMANCE.md, "The agent"). Budgets: the
// agent's resident memory (VmRSS) after unlock at most 64 MiB, and the first signature
// after unlock at most 5 ms beyond Argon2id.
//
// One agent (`certvault agent`, started here) serves two vaults made here with the same
// Argon2id cost (`certvault init`'s default): one of 10,000 CA-issued EC P-256 entries
// (bench_support.h's fill_with_entries) and one of a single entry. Each round unlocks each
// vault through the socket, signs once with one of its keys, and locks it again, the order
// of the two vaults swapped every round; Argon2id alone (seal::pin_key in this process)
// is timed in the same round. "Beyond Argon2id" is, per round, the 10,000-entry vault's
// unlock round trip plus its first signature, minus the 1-entry vault's unlock round trip
// (Argon2id plus what every unlock does); the median of the rounds is reported. On a
// shared machine Argon2id's wall time moves by tens of milliseconds from one unlock to
// the next, so the same difference is also taken in the agent's CPU time (the sum over
// its threads of /proc/PID/task/*/schedstat), which waiting for a vCPU does not inflate.
// The thread that hashes the manifest beside Argon2id (vault format 6) has ended by the
// time the CPU is read, so neither side counts it. A second agent then serves a third vault,
// of the same 10,000 entries but at the cheapest Argon2id cost (1 pass, 8 KiB: microseconds),
// as bench_vault's BM_UnlockBeyondArgon2id does. Before format 6 that was the quiet measure
// of what the agent adds to Argon2id; now it shows what unlock costs with no Argon2id to
// hide the manifest hash behind (the hash is then on the path), so the budget is judged on
// the default-cost difference, the vaults `certvault init` makes.
//
// Usage: bench_agent_vault [--entries N] [--rounds N]
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent_client.h"
#include "agent_key.h"
#include "bench_median.h"
#include "bench_support.h"
#include "seal.h"
#include "vault.h"

#ifndef CERTVAULT_CLI
#error "CERTVAULT_CLI must name the certvault program"
#endif

extern char** environ;

namespace {

namespace cv = certvault;
namespace agent = certvault::agent;
namespace fs = std::filesystem;
using certvault::bench::median;
using cv::bench::die;
using Clock = std::chrono::steady_clock;

const cv::SecureBytes& pin() {
  static const cv::SecureBytes p = cv::SecureBytes::from("bench-pin-1234");
  return p;
}

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// A vault of `n` entries at `init`'s default Argon2id cost; its canonical path.
fs::path make_vault(const fs::path& dir, const std::string& label, int n, cv::KdfParams kdf = {}) {
  cv::InitOptions opts;
  opts.label = label;
  opts.kdf = kdf;
  auto init = cv::Vault::init(dir, pin(), opts);
  if (!init) die(init.error().message);
  cv::bench::fill_with_entries(init->first, n);
  return fs::canonical(dir);
}

// A field of /proc/PID/status in KiB ("VmRSS", "VmHWM").
long status_kib(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(field + ":")) return std::atol(line.c_str() + field.size() + 1);
  die("no " + field + " for pid " + std::to_string(pid));
}

// The CPU time all of the process's threads have had, in milliseconds.
double cpu_ms(pid_t pid) {
  double ns = 0;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
    std::ifstream in(task.path() / "schedstat");
    double run = 0;
    if (in >> run) ns += run;
  }
  return ns / 1e6;
}

bool answers(const fs::path& socket) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// `certvault agent` serving both vaults; its pid once its socket answers.
// `small` may be empty: the agent then serves `big` alone.
pid_t start_agent(const fs::path& tmp, const fs::path& big, const fs::path& small,
                  const fs::path& socket) {
  std::vector<std::string> args = {
      CERTVAULT_CLI, "agent",         "--vault",     big.string(),
      "--socket",    socket.string(), "--audit-log", (tmp / "audit.log").string()};
  if (!small.empty()) {
    args.push_back("--serve");
    args.push_back(small.string());
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, (tmp / "agent.err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0)
    die(std::string("cannot start ") + CERTVAULT_CLI);
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 400; ++i) {
    if (answers(socket)) return pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  die("the agent did not answer on " + socket.string());
}

void stop_agent(pid_t pid) {
  ::kill(pid, SIGTERM);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

// Round trips through the agent, each timed by the caller.
struct Session {
  std::shared_ptr<agent::Client> client;

  void unlock(const fs::path& vault) {
    agent::Frame f(agent::Type::kUnlock);
    f.add(agent::Tag::kVault, vault.string());
    f.add(agent::Tag::kPin, pin().view());
    if (auto r = client->call(f, nullptr, 120000); !r) die("unlock: " + r.error().message);
  }
  void lock(const fs::path& vault) {
    agent::Frame f(agent::Type::kLock);
    f.add(agent::Tag::kVault, vault.string());
    if (auto r = client->call(f); !r) die("lock: " + r.error().message);
  }
  agent::RemoteKey key(const fs::path& vault, const std::string& nickname) {
    auto e = agent::resolve(client, vault.string(), nickname, std::nullopt);
    if (!e || !*e) die("resolve " + nickname + (e ? ": not served" : ": " + e.error().message));
    return (*e)->key;
  }
  static void sign(const agent::RemoteKey& key) {
    static const uint8_t digest[32] = {1, 2, 3};
    cv::SignParams p;  // ECDSA over a ready SHA-256 digest, as TLS's CertificateVerify
    if (auto s = key.sign(p, digest); !s) die("sign: " + s.error().message);
  }
};

}  // namespace

int main(int argc, char** argv) {
  int entries = 10000, rounds = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--entries")
      entries = std::atoi(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else
      die("unknown option " + a);
  }
  char templ[] = "/tmp/certvault-bench-agent-XXXXXX";
  if (!::mkdtemp(templ)) die("mkdtemp");
  const fs::path tmp = templ;

  std::printf("making a %d-entry vault and a 1-entry vault (Argon2id ops 2, 64 MiB)...\n", entries);
  std::fflush(stdout);
  auto made = Clock::now();
  const fs::path big = make_vault(tmp / "big", "big", entries);
  const fs::path small = make_vault(tmp / "small", "small", 1);
  const fs::path fast = make_vault(tmp / "fast", "fast", entries, cv::KdfParams{1, 8 * 1024});
  std::printf("made in %.1f s\n", ms_since(made) / 1000);

  const fs::path socket = tmp / "agent.sock";
  const pid_t pid = start_agent(tmp, big, small, socket);
  Session s{std::make_shared<agent::Client>(socket)};
  const agent::RemoteKey big_key = s.key(big, "entry-" + std::to_string(entries / 2));
  const agent::RemoteKey small_key = s.key(small, "entry-0");
  const long rss_locked = status_kib(pid, "VmRSS");

  std::vector<double> argon2, unlock_small, unlock_big, sign_small, sign_big, beyond;
  std::vector<double> rss_unlocked, rss_signed;
  std::vector<double> cpu_unlock_small, cpu_unlock_big, cpu_sign_big, cpu_beyond;
  const auto salt = cv::seal::random_bytes(cv::seal::kSaltBytes);
  for (int r = 0; r < rounds; ++r) {
    auto t = Clock::now();
    if (!cv::seal::pin_key(pin(), salt, cv::KdfParams{})) die("Argon2id");
    argon2.push_back(ms_since(t));
    for (int i = 0; i < 2; ++i) {
      const bool is_big = (i + r) % 2 == 0;
      const fs::path& vault = is_big ? big : small;
      double cpu = cpu_ms(pid);
      t = Clock::now();
      s.unlock(vault);
      (is_big ? unlock_big : unlock_small).push_back(ms_since(t));
      (is_big ? cpu_unlock_big : cpu_unlock_small).push_back(cpu_ms(pid) - cpu);
      if (is_big) rss_unlocked.push_back(static_cast<double>(status_kib(pid, "VmRSS")));
      cpu = cpu_ms(pid);
      t = Clock::now();
      Session::sign(is_big ? big_key : small_key);
      (is_big ? sign_big : sign_small).push_back(ms_since(t));
      if (is_big) cpu_sign_big.push_back(cpu_ms(pid) - cpu);
      if (is_big) rss_signed.push_back(static_cast<double>(status_kib(pid, "VmRSS")));
      s.lock(vault);
    }
    beyond.push_back(unlock_big.back() + sign_big.back() - unlock_small.back());
    cpu_beyond.push_back(cpu_unlock_big.back() + cpu_sign_big.back() - cpu_unlock_small.back());
  }
  const long hwm = status_kib(pid, "VmHWM");
  stop_agent(pid);

  // The cheapest Argon2id: the round trips are what the agent adds to it.
  std::vector<double> fast_unlock, fast_sign, fast_total, fast_cpu;
  {
    const fs::path fast_socket = tmp / "fast.sock";
    const pid_t fast_pid = start_agent(tmp, fast, {}, fast_socket);
    Session f{std::make_shared<agent::Client>(fast_socket)};
    const agent::RemoteKey key = f.key(fast, "entry-" + std::to_string(entries / 2));
    for (int r = 0; r < rounds; ++r) {
      const double cpu = cpu_ms(fast_pid);
      auto t = Clock::now();
      f.unlock(fast);
      fast_unlock.push_back(ms_since(t));
      t = Clock::now();
      Session::sign(key);
      fast_sign.push_back(ms_since(t));
      fast_total.push_back(fast_unlock.back() + fast_sign.back());
      fast_cpu.push_back(cpu_ms(fast_pid) - cpu);
      f.lock(fast);
    }
    stop_agent(fast_pid);
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);

  std::printf("\n%d rounds; medians (min-max)\n", rounds);
  auto row = [](const char* what, const std::vector<double>& v, const char* unit) {
    std::printf("%-55s %9.2f %s  (%.2f-%.2f)\n", what, median(v), unit,
                *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
  };
  row("Argon2id alone, this process", argon2, "ms");
  row("unlock round trip, 1-entry vault", unlock_small, "ms");
  row("unlock round trip, 10,000-entry vault", unlock_big, "ms");
  row("first signature after unlock, 1-entry vault", sign_small, "ms");
  row("first signature after unlock, 10,000-entry vault", sign_big, "ms");
  row("10,000: unlock + first signature - 1-entry unlock", beyond, "ms");
  row("agent CPU: unlock, 1-entry vault", cpu_unlock_small, "ms");
  row("agent CPU: unlock, 10,000-entry vault", cpu_unlock_big, "ms");
  row("agent CPU: first signature, 10,000-entry vault", cpu_sign_big, "ms");
  row("agent CPU: 10,000 unlock + first signature - 1-entry unlock", cpu_beyond, "ms");
  row("cheapest Argon2id, 10,000 entries: unlock round trip", fast_unlock, "ms");
  row("cheapest Argon2id, 10,000 entries: first signature", fast_sign, "ms");
  row("cheapest Argon2id, 10,000 entries: unlock + first sig.", fast_total, "ms");
  row("cheapest Argon2id, 10,000 entries: agent CPU for both", fast_cpu, "ms");
  std::printf("%-55s %9.1f MiB\n", "agent VmRSS, both vaults locked",
              static_cast<double>(rss_locked) / 1024);
  row(
      "agent VmRSS after unlocking the 10,000-entry vault, MiB",
      [&] {
        auto v = rss_unlocked;
        for (auto& x : v) x /= 1024;
        return v;
      }(),
      "MiB");
  row(
      "agent VmRSS after its first signature, MiB",
      [&] {
        auto v = rss_signed;
        for (auto& x : v) x /= 1024;
        return v;
      }(),
      "MiB");
  std::printf("%-55s %9.1f MiB\n", "agent VmHWM (peak, Argon2id's 64 MiB included)",
              static_cast<double>(hwm) / 1024);
  const double rss_max = std::max(*std::max_element(rss_unlocked.begin(), rss_unlocked.end()),
                                  *std::max_element(rss_signed.begin(), rss_signed.end())) /
                         1024;
  const double beyond_median = median(beyond);
  std::printf("\nbudget: VmRSS after unlock <= 64 MiB: %.1f MiB (largest of the rounds): %s\n",
              rss_max, rss_max <= 64 ? "holds" : "MISSED");
  std::printf(
      "budget: first signature <= 5 ms beyond Argon2id (default cost, less the 1-entry unlock): "
      "%.2f ms wall: %s\n",
      beyond_median, beyond_median <= 5 ? "holds" : "MISSED");
  std::printf("  the same in the agent's CPU (live threads): %.2f ms\n", median(cpu_beyond));
  std::printf(
      "  with the cheapest Argon2id, nothing to hash beside, the manifest hash on the path: "
      "%.2f ms\n",
      median(fast_total));
  return 0;
}

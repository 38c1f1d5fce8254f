// Renewal budgets (docs/PERFORMANCE.md, "Renewal"), on the CLI as a user or a timer runs it:
//  1. `certvault renew --dry-run` over a 10,000-entry vault with nothing due, no PIN:
//     at most 50 ms (wall time of the process, median of the rounds);
//  2. a due renewal from the vault CA (`certvault renew NICKNAME`, no command, no file
//     targets) beside `certvault rotate` of the same entry: at most 1.1x. Each round runs
//     one renewal and one rotation, in turn first, on the same entry of the 10,000-entry
//     vault; the ratio is taken within each round and its median reported. Argon2id runs
//     at the cheapest cost, so that it does not hide the difference.
// For reference in the same rounds: `certvault check` and `certvault list` on that vault.
//
// Usage: bench_renew [--rounds N] [--entries N]   (scripts/bench-renew.sh)
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench_support.h"
#include "renewal.h"
#include "vault.h"

extern char** environ;

namespace {

namespace cv = certvault;
namespace fs = std::filesystem;
using cv::bench::die;

// Runs argv with stdout and stdin on /dev/null; the wall time in ms; dies on failure.
double timed(const std::vector<std::string>& args, bool must_succeed = true) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) die("spawn " + args[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) die("waitpid");
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  posix_spawn_file_actions_destroy(&fa);
  if (must_succeed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
    die(args.back() + " failed (exit " + std::to_string(WEXITSTATUS(status)) + ")");
  return ms;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 21, entries = 10000;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--entries")
      entries = std::atoi(argv[i + 1]);
    else
      die("unknown option " + a);
  }
  if (rounds < 5 || entries < 1) die("--rounds at least 5, --entries at least 1");
  char tmpl[] = "/tmp/certvault-bench-renew-XXXXXX";
  const fs::path dir = mkdtemp(tmpl);
  const fs::path vault = dir / "vault", pin = dir / "pin";
  {
    std::ofstream(pin) << "bench-pin-1234";
    fs::permissions(pin, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    cv::InitOptions opts;
    opts.label = "bench";
    opts.kdf = {1, 8192};
    auto init = cv::Vault::init(vault, cv::SecureBytes::from("bench-pin-1234"), opts);
    if (!init) die(init.error().message);
    cv::bench::fill_with_entries(init->first, entries);  // 365 days each
    // Every entry renews 30 days before its end: nothing is due for 335 days.
    auto set = init->first.update_policy(
        [](cv::Policy& p) { p.renew = cv::parse_renew_before("30d").value(); });
    if (!set) die(set.error().message);
  }
  const std::string cli = CERTVAULT_CLI;
  const std::vector<std::string> base = {cli, "--vault", vault.string()};
  auto with = [&](std::vector<std::string> more, bool pin_file) {
    std::vector<std::string> a = base;
    if (pin_file) {
      a.push_back("--pin-file");
      a.push_back(pin.string());
    }
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  // No agent: every command works in-process, as a timer's does.
  ::setenv("CERTVAULT_AGENT_SOCK", (dir / "no-agent.sock").c_str(), 1);
  const auto dry = with({"renew", "--dry-run"}, false);
  const auto check = with({"check"}, false);
  const auto list = with({"list"}, false);
  const std::string middle = "entry-" + std::to_string(entries / 2);
  const auto renew = with({"renew", middle}, true);
  const auto rotate = with({"rotate", middle}, true);
  timed(dry);  // warm the page cache
  std::vector<double> t_dry, t_check, t_list, t_renew, t_rotate, ratio;
  for (int r = 0; r < rounds; ++r) {
    t_dry.push_back(timed(dry));
    t_check.push_back(timed(check));
    t_list.push_back(timed(list));
    double a = 0, b = 0;
    if (r % 2) {
      a = timed(renew);
      b = timed(rotate);
    } else {
      b = timed(rotate);
      a = timed(renew);
    }
    t_renew.push_back(a);
    t_rotate.push_back(b);
    ratio.push_back(a / b);
  }
  std::printf("%d entries, %d rounds; medians of the rounds\n\n", entries, rounds);
  std::printf("%-46s %10s\n", "command", "wall ms");
  std::printf("%-46s %10.2f\n", "renew --dry-run (nothing due, no PIN)", median(t_dry));
  std::printf("%-46s %10.2f\n", "check (reference)", median(t_check));
  std::printf("%-46s %10.2f\n", "list (reference)", median(t_list));
  std::printf("%-46s %10.2f\n", ("renew " + middle + " (vault CA)").c_str(), median(t_renew));
  std::printf("%-46s %10.2f\n", ("rotate " + middle).c_str(), median(t_rotate));
  std::printf("\nbudget: renew --dry-run over %d entries: %.2f ms (<= 50 ms)\n", entries,
              median(t_dry));
  std::printf("budget: renew / rotate of the same entry, side by side: %.3fx (<= 1.1x)\n",
              median(ratio));
  fs::remove_all(dir);
  return 0;
}

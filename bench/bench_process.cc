// The agent's per-process budget (docs/PERFORMANCE.md, "The agent"): one short-lived
// `openssl pkeyutl -sign` with the key held by a running agent, beside the same command
// with a PEM key file under the same openssl.cnf (certvault.so loaded, unused). Budget:
// wall time and peak memory (max RSS) each at most 1.3x. For reference in the same
// rotation: a PEM key without certvault.so loaded at all, and the old in-process way (a
// certvault: URI with pin-source=file:, Argon2id at the vault's cost in every process).
//
// Every round runs each variant once, the order rotated from one round to the next, so
// that the host's drifting speed weighs on all of them alike; a ratio is taken within each
// round, and the medians of the rounds are reported. Wall time is posix_spawn to wait4;
// peak memory is wait4's ru_maxrss.
//
// Usage (scripts/bench-agent.sh prepares all of it):
//   bench_process --conf CNF --plain-conf CNF --socket SOCK --vault DIR --pin-file F
//                 --nickname NICK --pem KEY.pem [--rounds N] [--openssl PATH]
#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
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
#include <map>
#include <string>
#include <vector>

#include "bench_median.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;
using certvault::bench::median;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_process: %s\n", what.c_str());
  std::exit(1);
}

struct Options {
  std::string openssl = "openssl";
  std::string conf, plain_conf, socket, vault, pin_file, nickname, pem;
  int rounds = 15;
};

Options parse(int argc, char** argv) {
  Options o;
  std::map<std::string, std::string*> text = {
      {"--openssl", &o.openssl},   {"--conf", &o.conf},   {"--plain-conf", &o.plain_conf},
      {"--socket", &o.socket},     {"--vault", &o.vault}, {"--pin-file", &o.pin_file},
      {"--nickname", &o.nickname}, {"--pem", &o.pem}};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) die("missing value after " + a);
    if (a == "--rounds") {
      o.rounds = std::atoi(argv[++i]);
    } else if (auto it = text.find(a); it != text.end()) {
      *it->second = argv[++i];
    } else {
      die("unknown option " + a);
    }
  }
  for (auto& [name, value] : text)
    if (value->empty()) die("give " + name);
  if (o.rounds < 10) die("--rounds must be at least 10");
  return o;
}

// One way of signing: a command line and the environment it runs in.
struct Variant {
  std::string name;
  std::vector<std::string> argv, env;
};

struct Sample {
  double wall_ms = 0;
  long maxrss_kib = 0;
};

std::vector<char*> pointers(std::vector<std::string>& v) {
  std::vector<char*> p;
  for (auto& s : v) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

// Runs `v` once with stdout discarded and stderr to `err`; dies when it fails.
Sample run(Variant& v, const fs::path& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  auto argv = pointers(v.argv);
  auto envp = pointers(v.env);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = 0;
  if (posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0)
    die("cannot start " + v.argv[0]);
  int status = 0;
  rusage ru{};
  while (::wait4(pid, &status, 0, &ru) < 0)
    if (errno != EINTR) die("wait4");
  const auto end = std::chrono::steady_clock::now();
  posix_spawn_file_actions_destroy(&fa);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream in(err);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    die(v.name + " failed: " + text);
  }
  return {std::chrono::duration<double, std::milli>(end - start).count(), ru.ru_maxrss};
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  char templ[] = "/tmp/certvault-bench-process-XXXXXX";
  if (!::mkdtemp(templ)) die("mkdtemp");
  const fs::path tmp = templ;
  // An empty runtime directory: no user agent socket is found by accident.
  fs::create_directory(tmp / "run");
  std::ofstream(tmp / "data") << "thirty-two bytes of data to sign";

  const std::string path = std::string("PATH=") + (std::getenv("PATH") ? std::getenv("PATH") : "");
  const std::vector<std::string> base = {path, "HOME=" + tmp.string(),
                                         "XDG_RUNTIME_DIR=" + (tmp / "run").string()};
  auto env = [&](const std::string& conf, bool agent) {
    auto e = base;
    e.push_back("OPENSSL_CONF=" + conf);
    if (agent) e.push_back("CERTVAULT_AGENT_SOCK=" + o.socket);
    return e;
  };
  auto sign = [&](const std::string& key) {
    return std::vector<std::string>{
        o.openssl, "pkeyutl",  "-sign",  "-inkey", key,
        "-rawin",  "-digest",  "sha256", "-in",    (tmp / "data").string(),
        "-out",    "/dev/null"};
  };
  const std::string uri = "certvault:" + o.nickname + "?vault=" + o.vault;
  // Indexes into `variants`, used for the ratios below.
  enum { kAgent, kPemProvider, kPemPlain, kInProcess };
  std::vector<Variant> variants = {
      {"agent key (certvault: URI, agent)", sign(uri), env(o.conf, true)},
      {"PEM key, certvault.so loaded", sign(o.pem), env(o.conf, true)},
      {"PEM key, no certvault.so", sign(o.pem), env(o.plain_conf, false)},
      {"in-process (pin-source=file:, Argon2id)", sign(uri + "&pin-source=file:" + o.pin_file),
       env(o.conf, false)}};

  // One warm-up round (page cache, the agent's first decryption of the key), not counted.
  for (auto& v : variants) run(v, tmp / "err");
  std::vector<std::vector<Sample>> samples(variants.size());
  for (int r = 0; r < o.rounds; ++r)
    for (size_t i = 0; i < variants.size(); ++i) {
      const size_t k = (i + static_cast<size_t>(r)) % variants.size();
      samples[k].push_back(run(variants[k], tmp / "err"));
    }
  std::error_code ec;
  fs::remove_all(tmp, ec);

  std::printf("%d rounds, each variant once per round in rotating order; medians\n\n", o.rounds);
  std::printf("%-42s %10s %12s\n", "variant", "wall ms", "max RSS KiB");
  for (size_t k = 0; k < variants.size(); ++k) {
    std::vector<double> wall, rss;
    for (auto& s : samples[k]) {
      wall.push_back(s.wall_ms);
      rss.push_back(static_cast<double>(s.maxrss_kib));
    }
    std::printf("%-42s %10.2f %12.0f\n", variants[k].name.c_str(), median(wall), median(rss));
  }
  // The median over rounds of a/b, each round's pair timed within the same rotation.
  auto ratio = [&](size_t a, size_t b, bool memory) {
    std::vector<double> q;
    for (int r = 0; r < o.rounds; ++r) {
      const Sample &x = samples[a][r], &y = samples[b][r];
      q.push_back(memory ? static_cast<double>(x.maxrss_kib) / static_cast<double>(y.maxrss_kib)
                         : x.wall_ms / y.wall_ms);
    }
    return median(q);
  };
  struct Line {
    const char* what;
    size_t a, b;
    double limit;  // 0: no budget
  };
  const Line lines[] = {{"agent / PEM (certvault.so loaded)", kAgent, kPemProvider, 1.3},
                        {"agent / PEM (no certvault.so)", kAgent, kPemPlain, 0},
                        {"PEM with certvault.so / PEM without", kPemProvider, kPemPlain, 0},
                        {"in-process / PEM (certvault.so loaded)", kInProcess, kPemProvider, 0},
                        {"in-process / agent", kInProcess, kAgent, 0}};
  std::printf("\n%-42s %10s %12s\n", "ratio (median of per-round ratios)", "wall", "max RSS");
  for (const Line& l : lines) {
    const double wall = ratio(l.a, l.b, false), rss = ratio(l.a, l.b, true);
    std::printf("%-42s %9.2fx %11.2fx", l.what, wall, rss);
    if (l.limit > 0)
      std::printf("   budget <= %.1fx: wall %s, memory %s", l.limit,
                  wall <= l.limit ? "holds" : "MISSED", rss <= l.limit ? "holds" : "MISSED");
    std::printf("\n");
  }
  return 0;
}

// What this machine charges for the agent's round trip, whatever the agent does
// (docs/PERFORMANCE.md, "Reading the agent's figures"). The agent's budgets are ratios of a
// signature through a Unix socket to one in the program; this prints the part of that
// cost that belongs to the machine, so that figures from two machines can be compared:
//  - a system call that does nothing (getppid): on a virtual machine that traps to its
//    host for each, ten times a bare machine's;
//  - a 32-byte message to a thread on the other core and back, that thread looking for it
//    (the agent while a program signs in a loop);
//  - the same after the other core has been idle for a millisecond (the agent between two
//    TLS handshakes): the wake-up, which some hosts pay by running the idle virtual core
//    again;
//  - the same with both threads on one core;
//  - the last two again with the echo in another process, as the agent is: on one core the
//    switch between the two then changes address space, which some virtual machines charge
//    for (and the other side's caches are the cost).
// No certvault code is involved. Each figure is the median of `--rounds` round trips
// (default 2000), in microseconds.
//
// Usage: bench_machine [--rounds N]
#include <sched.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "bench_median.h"

namespace {

using certvault::bench::median;
using Clock = std::chrono::steady_clock;

double us_since(Clock::time_point t) {
  return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

bool pin(int cpu) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  return ::sched_setaffinity(0, sizeof one, &one) == 0;
}

// The two cores the figures use: the first two this process may run on.
std::vector<int> usable_cores() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  std::vector<int> cores;
  if (::sched_getaffinity(0, sizeof cpus, &cpus) != 0) return cores;
  for (int c = 0; c < CPU_SETSIZE && cores.size() < 2; ++c)
    if (CPU_ISSET(c, &cpus)) cores.push_back(c);
  return cores;
}

double syscall_us(int rounds) {
  std::vector<double> batches;
  for (int b = 0; b < 20; ++b) {
    const auto t = Clock::now();
    for (int i = 0; i < rounds; ++i) ::syscall(SYS_getppid);
    batches.push_back(us_since(t) / rounds);
  }
  return median(batches);
}

// Sends back what comes on `fd` until it closes.
void echo(int fd, bool looking) {
  char buf[64];
  for (;;) {
    ssize_t n;
    do {
      n = ::recv(fd, buf, sizeof buf, looking ? MSG_DONTWAIT : 0);
    } while (looking && n < 0 && errno == EAGAIN);
    if (n <= 0 || ::send(fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
  }
}

// Round trips to an echo pinned on `server_core`, from this thread pinned on `client_core`.
// `looking`: both sides ask the socket again until the message is there (as the agent and
// its clients do while signatures follow each other); otherwise they sleep in recv().
// `idle_us`: how long the client computes alone before each request. `process`: the echo
// is a child process (as the agent is another program's: a switch between the two on one
// core changes address space), not a thread of this one.
double round_trip_us(int client_core, int server_core, bool looking, int idle_us, bool process,
                     int rounds) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  std::atomic<bool> pinned{false};
  std::thread server;
  pid_t child = -1;
  if (process) {
    child = ::fork();
    if (child < 0) return -1;
    if (child == 0) {
      ::close(sv[0]);
      if (!pin(server_core)) ::_exit(1);
      echo(sv[1], looking);
      ::_exit(0);
    }
    ::close(sv[1]);
    sv[1] = -1;
  } else {
    server = std::thread([&] {
      pinned = pin(server_core);
      echo(sv[1], looking);
    });
  }
  pin(client_core);
  std::vector<double> times;
  char buf[32] = {};
  for (int i = 0; i < rounds; ++i) {
    const auto idle_until = Clock::now() + std::chrono::microseconds(idle_us);
    while (Clock::now() < idle_until) {
    }
    const auto t = Clock::now();
    if (::send(sv[0], buf, sizeof buf, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof buf)) break;
    ssize_t n;
    do {
      n = ::recv(sv[0], buf, sizeof buf, looking ? MSG_DONTWAIT : 0);
    } while (looking && n < 0 && errno == EAGAIN);
    if (n <= 0) break;
    times.push_back(us_since(t));
  }
  ::shutdown(sv[0], SHUT_RDWR);
  if (process) {
    int status = 0;
    pinned = ::waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  } else {
    server.join();
    ::close(sv[1]);
  }
  ::close(sv[0]);
  if (!pinned || static_cast<int>(times.size()) != rounds) return -1;
  return median(times);
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 2000;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_machine [--rounds N]\n");
      return 2;
    }
  }
  if (rounds < 10 || rounds > 1000000) {
    std::fprintf(stderr, "bench_machine: --rounds must be between 10 and 1000000\n");
    return 2;
  }
  const auto cores = usable_cores();
  std::printf("the machine's part of a round trip (medians of %d, us)\n", rounds);
  std::printf("  a system call (getppid)                                   %8.2f\n",
              syscall_us(rounds));
  if (cores.size() < 2) {
    std::printf("  (one core: no figures across cores)\n");
    return 0;
  }
  struct Row {
    const char* what;
    int server;
    bool looking;
    int idle_us;
    bool process;
  } rows[] = {
      {"other core, both looking (signatures in a loop)", cores[1], true, 0, false},
      {"other core, asleep, next request at once", cores[1], false, 0, false},
      {"other core, asleep, idle 1 ms before (a TLS client)", cores[1], false, 1000, false},
      {"same core, asleep, idle 1 ms before", cores[0], false, 1000, false},
      {"another process, other core, asleep, idle 1 ms before", cores[1], false, 1000, true},
      {"another process, same core, asleep, idle 1 ms before", cores[0], false, 1000, true},
  };
  int failed = 0;
  for (const Row& r : rows) {
    const double us = round_trip_us(cores[0], r.server, r.looking, r.idle_us, r.process, rounds);
    if (us < 0) {
      std::printf("  %-58s   failed\n", r.what);
      ++failed;
    } else {
      std::printf("  %-58s%8.2f\n", r.what, us);
    }
  }
  return failed ? 1 : 0;
}

// A program's side of the agent: finds its socket, sends requests and reads replies.
// Connections belong to the process that opened them: after fork() the child opens its
// own (a shared socket would interleave two processes' frames). Connections are pooled,
// one per request in flight, so threads sign in parallel.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent_protocol.h"
#include "error.h"

namespace certvault::agent {

// The default sockets: a user's ($XDG_RUNTIME_DIR/certvault/agent.sock) and the system
// instance's (/run/certvault/agent.sock).
std::filesystem::path user_socket();
std::filesystem::path system_socket();
// Where to look, first match wins: `configured` (the provider's or module's configuration),
// else $CERTVAULT_AGENT_SOCK, else the user socket, else the system socket. Only paths that
// exist as sockets count, and of the default two only one where an agent answers this
// user; nullopt when there is none, and the caller works in-process.
std::optional<std::filesystem::path> find_socket(const std::string& configured = {});

// How a program names a vault directory to the agent: absolute and canonical, as the agent
// knows the vaults it serves (a relative --vault would match nothing, or a label).
std::string vault_path_for_agent(const std::filesystem::path& dir);
// The name for a program's default vault ($XDG_DATA_HOME/certvault/default...): its path
// when this user has such a vault, so that a system agent's vault is never taken for it;
// else "", the agent's own default vault (a service with no vault of its own).
std::string default_vault_for_agent();

// A reply: its bytes, and the message decoded from them (views into `body`).
struct Reply {
  std::vector<uint8_t> body;
  Message message;
  Reply() = default;
  Reply(Reply&&) = default;
  Reply& operator=(Reply&&) = default;
  ~Reply();  // wiped
};

class Client {
 public:
  explicit Client(std::filesystem::path socket);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::filesystem::path& socket() const { return socket_; }
  // Sends `request` and waits for its reply (at most `timeout_ms` per read or write). A
  // reply of type kError comes back as the Error it carries, and its wire code in
  // `wire_code` when given (kNotServed tells the caller to work in-process). A connection
  // the agent has closed since its last use (the agent restarted) is replaced once.
  // `sent`, when given, tells whether the agent took the whole request: a failure after
  // that (no answer in time) may come after the agent carried it out.
  Result<Reply> call(Frame& request, ErrorCode* wire_code = nullptr, int timeout_ms = 30000,
                     bool* sent = nullptr);

 private:
  // A connection, and the core its answers come from (kCore; -1: not known).
  struct Pooled {
    int fd = -1;
    int core = -1;
  };
  // An idle connection of this process (second = true), or a new one. `fresh`: a new one,
  // and the idle ones closed (a pooled connection was found dead: the agent restarted, and
  // the others went with it).
  Result<std::pair<Pooled, bool>> take(bool fresh = false);
  void give(const Pooled& connection);  // back into the pool after a complete exchange
  Result<int> connect_new();
  // How long a signature request looks for its answer before it sleeps, from how long
  // answers have been taking.
  int64_t spin_us() const;
  void took(std::chrono::steady_clock::duration d);

  // A forked child starts over: a fresh lock (the parent's may have been held by a thread
  // the child does not have) and none of the parent's connections.
  void adopt_after_fork();

  std::filesystem::path socket_;
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();
  std::atomic<pid_t> pid_;             // the process the pooled connections belong to
  std::atomic<int> in_flight_{0};      // requests waiting for their answers now
  int cpus_ = 1;                       // the cores this process may run on, at the start
  std::atomic<int64_t> answer_us_{0};  // how long answers have been taking, on average
  std::vector<Pooled> idle_;
};

}  // namespace certvault::agent

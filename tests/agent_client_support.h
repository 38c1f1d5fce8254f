// What the agent's client-side tests share: a program's side of the agent as a library user
// has it (keystore's agent::Client, resolve, RemoteKey::sign), run in forked processes,
// each signature checked with plain OpenSSL against the public key the agent resolved; and
// the audit log's ok signatures counted by the peer's pid.
#pragma once

#include <grp.h>
#include <json/json.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent_key.h"
#include "signing.h"
#include "support.h"

namespace cvtest {

inline PkeyPtr public_key_of(const std::vector<uint8_t>& spki) {
  const unsigned char* p = spki.data();
  return PkeyPtr(d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size())));
}

// Signs `count` distinct messages ("<tag> <i>", hashed with SHA-256 here, the digest sent
// as a program's provider sends it) through the agent and verifies each signature over the
// message with `pub`. "" when all verified, else what went wrong first.
inline std::string sign_and_verify(const certvault::agent::RemoteKey& key, EVP_PKEY* pub, int count,
                                   const std::string& tag) {
  certvault::SignParams params;
  params.mechanism = certvault::SignMechanism::kEcdsa;
  params.digest = "sha256";
  for (int i = 0; i < count; ++i) {
    const std::string message = tag + " " + std::to_string(i);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    if (EVP_Digest(message.data(), message.size(), digest, &digest_len, EVP_sha256(), nullptr) != 1)
      return "sha256 failed";
    auto sig = key.sign(params, std::span<const uint8_t>(digest, digest_len));
    if (!sig) return "signature " + std::to_string(i) + ": " + sig.error().message;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (EVP_DigestVerifyInit_ex(md.get(), nullptr, "SHA256", nullptr, nullptr, pub, nullptr) != 1 ||
        EVP_DigestVerify(md.get(), sig->data(), sig->size(),
                         reinterpret_cast<const unsigned char*>(message.data()),
                         message.size()) != 1)
      return "signature " + std::to_string(i) + " of '" + message + "' does not verify";
  }
  return {};
}

// Resolves `nickname` on `client`, then sign_and_verify. "" on success.
inline std::string resolve_sign_verify(const std::shared_ptr<certvault::agent::Client>& client,
                                       const std::string& nickname, int count,
                                       const std::string& tag) {
  auto entry = certvault::agent::resolve(client, "", nickname, std::nullopt);
  if (!entry) return "resolve: " + entry.error().message;
  if (!*entry) return "the agent does not serve the default vault";
  if ((*entry)->locked) return (*entry)->locked_message();
  PkeyPtr pub = public_key_of((*entry)->spki);
  if (!pub) return "the resolved public key does not decode";
  return sign_and_verify((*entry)->key, pub.get(), count, tag);
}

// In a forked child: takes on the client user's identity (its groups first, for the
// socket's group), as setpriv --init-groups does. False when any step fails.
inline bool become(const char* user, uid_t uid, gid_t gid) {
  return ::initgroups(user, gid) == 0 && ::setresgid(gid, gid, gid) == 0 &&
         ::setresuid(uid, uid, uid) == 0;
}

// Forks a child that runs `body` (its error text, "" for success) and ends with _exit: 0 on
// success, else 1 after printing the error to stderr. The child is killed by SIGALRM if it
// runs past `deadline` (the parent also waits with a timeout). _exit, not exit: the
// child must not run the parent's destructors (temp directories, the agent's guard).
template <typename Body>
pid_t fork_child(std::chrono::seconds deadline, Body body) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::alarm(static_cast<unsigned>(deadline.count()));
  std::string error;
  try {
    error = body();
  } catch (const std::exception& e) {
    error = std::string("exception: ") + e.what();
  }
  if (!error.empty()) std::fprintf(stderr, "child %d: %s\n", ::getpid(), error.c_str());
  std::fflush(stderr);
  ::_exit(error.empty() ? 0 : 1);
}

// Waits for every child for at most `limit`; those still running then are killed (SIGKILL)
// and reported as -1. Otherwise each pid maps to its wait status.
inline std::map<pid_t, int> wait_children(const std::vector<pid_t>& pids,
                                          std::chrono::seconds limit) {
  std::map<pid_t, int> done;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (done.size() < pids.size() && std::chrono::steady_clock::now() < deadline) {
    for (pid_t p : pids) {
      if (done.contains(p)) continue;
      int status = 0;
      const pid_t r = ::waitpid(p, &status, WNOHANG);
      if (r == p) done[p] = status;
      if (r < 0 && errno != EINTR) done[p] = -1;
    }
    if (done.size() < pids.size()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (pid_t p : pids) {
    if (done.contains(p)) continue;
    ::kill(p, SIGKILL);
    int status = 0;
    while (::waitpid(p, &status, 0) < 0 && errno == EINTR) {
    }
    done[p] = -1;
  }
  return done;
}

inline std::string describe_status(int status) {
  if (status == -1) return "overran its time and was killed";
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// The audit log's successful signatures with `nickname`, counted by the peer's pid.
inline std::map<pid_t, int> ok_signatures_by_pid(const std::string& log,
                                                 const std::string& nickname) {
  std::map<pid_t, int> out;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> reader(b.newCharReader());
  size_t at = 0;
  while (at < log.size()) {
    size_t nl = log.find('\n', at);
    if (nl == std::string::npos) nl = log.size();
    Json::Value v;
    if (reader->parse(log.data() + at, log.data() + nl, &v, nullptr) && v.isObject() &&
        v["action"].asString() == "sign" && v["result"].asString() == "ok" &&
        v["nickname"].asString() == nickname)
      ++out[static_cast<pid_t>(v["peer"]["pid"].asInt())];
    at = nl + 1;
  }
  return out;
}

}  // namespace cvtest

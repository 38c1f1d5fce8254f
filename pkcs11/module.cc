#include "module.h"

#include <pthread.h>
#include <unistd.h>

#include <cstring>

namespace certvault::pkcs11 {

std::mutex g_init;
std::atomic<Module*> g_module{nullptr};
std::atomic<pid_t> g_pid{0};

namespace {

void fork_prepare() {
  g_init.lock();
}
void fork_parent() {
  g_init.unlock();
}
void fork_child() {
  g_pid.store(::getpid(), std::memory_order_relaxed);
  g_init.unlock();
}

}  // namespace

void install_fork_handlers() {
  static std::once_flag atfork;
  std::call_once(atfork, [] { pthread_atfork(fork_prepare, fork_parent, fork_child); });
}

Module* module() {
  Module* m = g_module.load(std::memory_order_acquire);
  return m && m->pid == g_pid.load(std::memory_order_relaxed) ? m : nullptr;
}

CK_RV session_of(Module* m, CK_SESSION_HANDLE h, std::shared_ptr<Session>& out) {
  std::lock_guard lock(m->mu);
  auto it = m->sessions.find(h);
  if (it == m->sessions.end()) return CKR_SESSION_HANDLE_INVALID;
  out = it->second;
  return CKR_OK;
}

void pad(CK_UTF8CHAR* dst, size_t n, std::string_view s) {
  std::memset(dst, ' ', n);
  std::memcpy(dst, s.data(), std::min(n, s.size()));
}

}  // namespace certvault::pkcs11

#include "debug.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace certvault::debug {
namespace {

// CERTVAULT_DEBUG unset, empty or "0": off; a path starting with '/': appended there;
// anything else: stderr. secure_getenv: in a setuid or setgid program (which loads the
// provider when openssl.cnf names it, or the module when its configuration does) the
// variable is not there, so nobody can make such a program write where they cannot. The
// file is never reached through a symbolic link and is created owner-only.
FILE* stream() {
  static FILE* out = []() -> FILE* {
    const char* v = ::secure_getenv("CERTVAULT_DEBUG");
    if (!v || !*v || std::strcmp(v, "0") == 0) return nullptr;
    if (v[0] != '/') return stderr;
    // O_NONBLOCK: a FIFO put there by someone else does not hold the host up; and a file
    // that another user made, or that others may read, is not written to.
    const int fd =
        ::open(v, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
    if (fd >= 0) {
      struct stat st {};
      if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid() ||
          (st.st_mode & 077) != 0) {
        ::close(fd);
        std::fprintf(stderr,
                     "certvault: the debug log %s is not a regular file of this user's that "
                     "only they can read; logging to standard error instead\n",
                     v);
        return stderr;
      }
      if (FILE* f = ::fdopen(fd, "a")) return f;
      const int err = errno;
      ::close(fd);
      errno = err;
    }
    std::fprintf(stderr,
                 "certvault: cannot open the debug log %s (%s); logging to standard error "
                 "instead\n",
                 v, std::strerror(errno));
    return stderr;
  }();
  return out;
}

}  // namespace

bool enabled() {
  return stream() != nullptr;
}

void log(const char* component, const char* fmt, ...) {
  FILE* out = stream();
  if (!out) return;
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::fputs(component, out);
  std::fputs(": ", out);
  va_list args;
  va_start(args, fmt);
  std::vfprintf(out, fmt, args);
  va_end(args);
  std::fputc('\n', out);
  std::fflush(out);
}

}  // namespace certvault::debug

#include "audit.h"

#include <fcntl.h>
#include <json/json.h>
#include <sys/stat.h>
#include <syslog.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "vault.h"

namespace certvault::agent {
namespace {

// A JSON string (RFC 8259 section 7): quotes, backslashes and control bytes escaped.
void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", c);
      out += esc;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

std::string now_text() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  std::tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char frac[32];
  std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ts.tv_nsec / 1000000));
  return std::string(buf) + frac;
}

}  // namespace

std::filesystem::path default_audit_log(bool system) {
  if (system) return "/var/lib/certvault/audit.log";
  if (const char* s = ::secure_getenv("XDG_STATE_HOME"); s && *s == '/')
    return std::filesystem::path(s) / "certvault" / "audit.log";
  if (const char* h = ::secure_getenv("HOME"); h && *h == '/')
    return std::filesystem::path(h) / ".local" / "state" / "certvault" / "audit.log";
  return {};
}

Audit::Audit(std::filesystem::path file, uint64_t max_bytes)
    : file_(std::move(file)), max_bytes_(max_bytes) {}

Audit::~Audit() {
  if (fd_ >= 0) ::close(fd_);
}

Result<void> Audit::open() {
  if (file_.empty()) return {};
  std::error_code ec;
  if (file_.has_parent_path() && !std::filesystem::exists(file_.parent_path(), ec)) {
    std::filesystem::create_directories(file_.parent_path(), ec);
    if (!ec) ::chmod(file_.parent_path().c_str(), 0700);
  }
  fd_ = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0)
    return fail(Code::kIo, "cannot open the audit log " + file_.string() + ": " +
                               std::strerror(errno) + "; give --audit-log PATH");
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode))
    return fail(Code::kIo, "the audit log " + file_.string() + " is not a regular file");
  if (st.st_mode & 077) ::fchmod(fd_, 0600);
  size_ = static_cast<uint64_t>(st.st_size);
  return {};
}

void Audit::rotate_if_due(size_t adding) {
  if (!max_bytes_) return;
  const uint64_t size = size_.load();
  if (size == 0 || size + adding <= max_bytes_) return;
  std::unique_lock lock(file_mu_);
  if (fd_ < 0 || size_.load() + adding <= max_bytes_) return;  // another thread rotated
  std::filesystem::path old = file_;
  old += ".1";
  ::rename(file_.c_str(), old.c_str());
  ::close(fd_);
  fd_ = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  size_ = 0;
}

void Audit::write_line(const std::string& line) {
  rotate_if_due(line.size());
  std::shared_lock lock(file_mu_);
  if (fd_ < 0) return;
  // One write() per line, so a reader never sees half of one.
  if (::write(fd_, line.data(), line.size()) == static_cast<ssize_t>(line.size()))
    size_ += line.size();
}

void Audit::record(const AuditEvent& e, const PeerInfo& peer) {
  // Written by hand, not through jsoncpp: a line per signature, at signing rates.
  std::string line;
  line.reserve(320);
  line += "{\"time\":";
  json_string(line, now_text());
  line += ",\"vault\":";
  json_string(line, e.vault);
  line += ",\"action\":";
  json_string(line, e.action);
  if (!e.nickname.empty()) {
    line += ",\"nickname\":";
    json_string(line, e.nickname);
  }
  if (e.generation) line += ",\"generation\":" + std::to_string(e.generation);
  if (!e.key_id.empty()) {
    line += ",\"key_id\":";
    json_string(line, e.key_id);
  }
  if (!e.mechanism.empty()) {
    line += ",\"mechanism\":";
    json_string(line, e.mechanism);
  }
  line += e.ok ? ",\"result\":\"ok\"" : ",\"result\":\"refused\"";
  if (!e.reason.empty()) {
    line += ",\"reason\":";
    json_string(line, e.reason);
  }
  line += ",\"peer\":{\"uid\":" + std::to_string(peer.id.uid) +
          ",\"gid\":" + std::to_string(peer.id.gid) + ",\"pid\":" + std::to_string(peer.pid);
  if (!peer.id.exe.empty()) {
    line += ",\"exe\":";
    json_string(line, peer.id.exe);
  }
  if (!peer.id.unit.empty()) {
    line += ",\"unit\":";
    json_string(line, peer.id.unit);
  }
  line += "}}\n";
  write_line(line);
  if (e.ok && e.action == "sign") {
    const std::string key = e.vault + "/" + e.nickname;
    std::lock_guard lock(counts_mu_);
    ++counts_[key];
  }
  if (!e.ok) {
    sd_journal_send("MESSAGE=certvault agent refused %s of '%s' in vault '%s' to uid %u pid %d: %s",
                    e.action.c_str(), e.nickname.c_str(), e.vault.c_str(), peer.id.uid, peer.pid,
                    e.reason.c_str(), "PRIORITY=%i", LOG_WARNING, "CERTVAULT_VAULT=%s",
                    e.vault.c_str(), "CERTVAULT_NICKNAME=%s", e.nickname.c_str(),
                    "CERTVAULT_ACTION=%s", e.action.c_str(), "CERTVAULT_RESULT=refused",
                    "CERTVAULT_PEER_UID=%u", peer.id.uid, "CERTVAULT_PEER_PID=%d", peer.pid,
                    "CERTVAULT_PEER_EXE=%s", peer.id.exe.c_str(), "CERTVAULT_PEER_UNIT=%s",
                    peer.id.unit.c_str(), nullptr);
  }
}

void Audit::summarise() {
  std::map<std::string, uint64_t> counts;
  {
    std::lock_guard lock(counts_mu_);
    counts.swap(counts_);
  }
  for (const auto& [key, n] : counts) {
    const auto slash = key.rfind('/');  // nicknames have no '/'; labels may
    const std::string vault = key.substr(0, slash), nickname = key.substr(slash + 1);
    sd_journal_send("MESSAGE=certvault agent: %llu signatures with '%s' in vault '%s'",
                    static_cast<unsigned long long>(n), nickname.c_str(), vault.c_str(),
                    "PRIORITY=%i", LOG_INFO, "CERTVAULT_VAULT=%s", vault.c_str(),
                    "CERTVAULT_NICKNAME=%s", nickname.c_str(), "CERTVAULT_SIGNATURES=%llu",
                    static_cast<unsigned long long>(n), nullptr);
  }
}

void Audit::journal(int priority, const std::string& message, const std::string& vault) {
  sd_journal_send("MESSAGE=certvault agent: %s", message.c_str(), "PRIORITY=%i", priority,
                  "CERTVAULT_VAULT=%s", vault.c_str(), nullptr);
}

}  // namespace certvault::agent

#include "support.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

extern char** environ;

namespace cvtest {

namespace {

[[noreturn]] void die(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const auto& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

std::string bio_string(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

}  // namespace

// --- temp dirs ------------------------------------------------------------------------

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/certvault-test-XXXXXX";
  if (!::mkdtemp(templ.data())) die("mkdtemp " + templ);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  // Tests chmod things; make sure everything can be removed.
  for (auto it = fs::recursive_directory_iterator(path_, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) ::chmod(it->path().c_str(), 0700);
  }
  fs::remove_all(path_, ec);
}

// --- processes ------------------------------------------------------------------------

std::vector<std::string> RunResult::err_lines() const {
  std::vector<std::string> lines;
  std::istringstream in(err);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

RunResult run(const std::vector<std::string>& argv, std::string_view input,
              std::chrono::seconds timeout) {
  // A child that exits without reading its stdin must not kill the test with SIGPIPE.
  static const bool sigpipe_ignored = [] { return ::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();
  (void)sigpipe_ignored;
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) die("pipe");
  Fd in_r(in_pipe[0]), in_w(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) die("pipe");
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) die("pipe");
  Fd err_r(err_pipe[0]), err_w(err_pipe[1]);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_r.fd, 0);
  posix_spawn_file_actions_adddup2(&actions, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.fd, 2);
  auto args = c_argv(argv);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    errno = rc;
    die("spawn " + argv[0]);
  }
  in_r.reset();
  out_w.reset();
  err_w.reset();

  RunResult result;
  size_t written = 0;
  if (input.empty()) in_w.reset();
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out_r.fd >= 0 || err_r.fd >= 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_r.fd >= 0) out_i = n, fds[n++] = {out_r.fd, POLLIN, 0};
    if (err_r.fd >= 0) err_i = n, fds[n++] = {err_r.fd, POLLIN, 0};
    if (in_w.fd >= 0) in_i = n, fds[n++] = {in_w.fd, POLLOUT, 0};
    int ready = ::poll(fds, n, static_cast<int>(std::min<long>(left.count(), 1000)));
    if (ready < 0 && errno != EINTR) die("poll");
    if (ready <= 0) continue;
    char buf[65536];
    auto drain = [&](int i, Fd& fd, std::string& sink) {
      if (i < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) return;
      ssize_t got = ::read(fd.fd, buf, sizeof buf);
      if (got > 0)
        sink.append(buf, static_cast<size_t>(got));
      else if (got == 0 || errno != EINTR)
        fd.reset();
    };
    drain(out_i, out_r, result.out);
    drain(err_i, err_r, result.err);
    if (in_i >= 0 && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t put = ::write(in_w.fd, input.data() + written, input.size() - written);
      if (put > 0) written += static_cast<size_t>(put);
      if (put < 0 || written == input.size()) in_w.reset();
    }
  }
  in_w.reset();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid");
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

pid_t spawn_quiet(const std::vector<std::string>& argv) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  auto args = c_argv(argv);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    errno = rc;
    die("spawn " + argv[0]);
  }
  return pid;
}

pid_t spawn_logged(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  auto args = c_argv(argv);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    errno = rc;
    die("spawn " + argv[0]);
  }
  return pid;
}

std::string cli() {
  return CERTVAULT_CLI;
}

// --- files ----------------------------------------------------------------------------

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  std::string s = read_file(path);
  return {s.begin(), s.end()};
}

void write_file(const fs::path& path, std::string_view content, mode_t mode) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (fd.fd < 0) die("open " + path.string());
  if (::fchmod(fd.fd, mode) != 0) die("fchmod " + path.string());
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write " + path.string());
    }
    off += static_cast<size_t>(n);
  }
}

void overwrite_in_place(const fs::path& path, std::string_view content) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  if (fd.fd < 0) die("open " + path.string());
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd.fd, content.data() + off, content.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("write " + path.string());
    }
    off += static_cast<size_t>(n);
  }
}

fs::path write_secret_file(const fs::path& path, std::string_view secret) {
  write_file(path, std::string(secret) + "\n", 0600);
  return path;
}

mode_t file_mode(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) die("stat " + path.string());
  return st.st_mode & 07777;
}

// --- snapshots ------------------------------------------------------------------------

Snapshot snapshot(const fs::path& dir) {
  Snapshot snap;
  snap.modes["."] = file_mode(dir);
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = fs::relative(it->path(), dir).string();
    snap.modes[rel] = file_mode(it->path());
    if (it->is_regular_file()) snap.files[rel] = read_file(it->path());
  }
  return snap;
}

std::string describe_difference(const Snapshot& before, const Snapshot& after) {
  std::string out;
  for (const auto& [path, content] : before.files) {
    auto it = after.files.find(path);
    if (it == after.files.end())
      out += "removed " + path + "; ";
    else if (it->second != content)
      out += "changed " + path + "; ";
  }
  for (const auto& [path, content] : after.files)
    if (!before.files.contains(path)) out += "added " + path + "; ";
  for (const auto& [path, mode] : before.modes) {
    auto it = after.modes.find(path);
    if (it != after.modes.end() && it->second != mode) out += "mode of " + path + " changed; ";
  }
  for (const auto& [path, mode] : after.modes)
    if (!before.modes.contains(path) && !after.files.contains(path))
      out += "added dir " + path + "; ";
  return out;
}

void restore(const fs::path& dir, const Snapshot& snap) {
  std::vector<fs::path> extra;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator();
       ++it) {
    std::string rel = fs::relative(it->path(), dir).string();
    if (it->is_regular_file() && !snap.files.contains(rel)) extra.push_back(it->path());
  }
  for (const auto& p : extra) fs::remove(p);
  for (const auto& [rel, content] : snap.files) {
    fs::path p = dir / rel;
    auto mode = snap.modes.at(rel);
    write_file(p, content, mode);
  }
}

// --- dates ----------------------------------------------------------------------------

std::string date_in_days(int days) {
  std::time_t t = std::time(nullptr) + static_cast<std::time_t>(days) * 86400;
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

int64_t end_of_day_utc(const std::string& yyyy_mm_dd) {
  std::tm tm{};
  if (!::strptime(yyyy_mm_dd.c_str(), "%Y-%m-%d", &tm)) throw std::runtime_error("bad date");
  tm.tm_hour = 23;
  tm.tm_min = 59;
  tm.tm_sec = 59;
  return ::timegm(&tm);
}

std::string openssl_time(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%b %e %H:%M:%S %Y GMT", &tm);
  return buf;
}

std::string pem_block(std::string_view text, std::string_view type) {
  std::string begin = "-----BEGIN " + std::string(type) + "-----";
  std::string end = "-----END " + std::string(type) + "-----";
  auto b = text.find(begin);
  if (b == std::string_view::npos) return {};
  auto e = text.find(end, b);
  if (e == std::string_view::npos) return {};
  return std::string(text.substr(b, e + end.size() - b)) + "\n";
}

// --- OpenSSL values -------------------------------------------------------------------

X509Ptr x509_from_der(const std::vector<uint8_t>& der) {
  const unsigned char* p = der.data();
  return X509Ptr(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
}

X509Ptr x509_from_pem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

std::string der_to_pem(const std::vector<uint8_t>& der) {
  auto cert = x509_from_der(der);
  if (!cert) return {};
  return x509_to_pem(cert.get());
}

std::string x509_to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return bio_string(bio.get());
}

std::string key_to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return bio_string(bio.get());
}

PkeyPtr generate_ec_key() {
  return PkeyPtr(EVP_EC_gen("P-256"));
}

X509Ptr make_self_signed(EVP_PKEY* key, const std::string& cn, long not_before_offset,
                         long not_after_offset, bool ca) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), static_cast<long>(std::time(nullptr)));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before_offset);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after_offset);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
  const char* leaf[][2] = {{"basicConstraints", "critical,CA:FALSE"},
                           {"keyUsage", "critical,digitalSignature"},
                           {"extendedKeyUsage", "clientAuth"},
                           {"subjectKeyIdentifier", "hash"}};
  const char* authority[][2] = {{"basicConstraints", "critical,CA:TRUE"},
                                {"keyUsage", "critical,keyCertSign,cRLSign"},
                                {"subjectKeyIdentifier", "hash"},
                                {"authorityKeyIdentifier", "keyid:always"}};
  auto& exts = ca ? authority : leaf;
  for (auto& [n, v] : exts) {
    X509_EXTENSION* ext = X509V3_EXT_conf(nullptr, &ctx, n, v);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key, EVP_sha256()) <= 0) return nullptr;
  return cert;
}

fs::path write_other_ca(const fs::path& dir) {
  auto key = generate_ec_key();
  auto ca = key ? make_self_signed(key.get(), "Other CA", 0, 86400, /*ca=*/true) : nullptr;
  if (!ca) return {};
  const fs::path pem = dir / "other-ca.pem";
  write_file(pem, x509_to_pem(ca.get()));
  return pem;
}

std::string to_hex(std::string_view bytes, bool upper) {
  static const char* lower_digits = "0123456789abcdef";
  static const char* upper_digits = "0123456789ABCDEF";
  const char* d = upper ? upper_digits : lower_digits;
  std::string out;
  for (unsigned char c : bytes) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

std::string to_base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::vector<std::pair<std::string, std::string>> secret_encodings(EVP_PKEY* key) {
  std::vector<std::pair<std::string, std::string>> raw;
  // PKCS#8 DER.
  {
    BioPtr bio(BIO_new(BIO_s_mem()));
    i2d_PKCS8PrivateKey_bio(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
    raw.emplace_back("PKCS#8 DER", bio_string(bio.get()));
  }
  // Traditional / type-specific DER.
  {
    unsigned char* der = nullptr;
    int n = i2d_PrivateKey(key, &der);
    if (n > 0) raw.emplace_back("i2d_PrivateKey DER", std::string(reinterpret_cast<char*>(der), n));
    OPENSSL_free(der);
  }
  int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_ED25519) {
    unsigned char seed[64];
    size_t len = sizeof seed;
    if (EVP_PKEY_get_raw_private_key(key, seed, &len) == 1)
      raw.emplace_back("Ed25519 seed", std::string(reinterpret_cast<char*>(seed), len));
  } else {
    auto add_bn = [&](const char* param, const std::string& label, int pad) {
      BIGNUM* bn = nullptr;
      if (EVP_PKEY_get_bn_param(key, param, &bn) != 1) return;
      int len = pad > 0 ? pad : BN_num_bytes(bn);
      std::string bytes(static_cast<size_t>(len), '\0');
      BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(bytes.data()), len);
      BN_clear_free(bn);
      raw.emplace_back(label, bytes);
    };
    if (id == EVP_PKEY_EC) {
      add_bn(OSSL_PKEY_PARAM_PRIV_KEY, "EC private scalar", (EVP_PKEY_get_bits(key) + 7) / 8);
    } else if (id == EVP_PKEY_RSA) {
      add_bn(OSSL_PKEY_PARAM_RSA_D, "RSA private exponent", 0);
      add_bn(OSSL_PKEY_PARAM_RSA_FACTOR1, "RSA prime p", 0);
      add_bn(OSSL_PKEY_PARAM_RSA_FACTOR2, "RSA prime q", 0);
    }
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [label, bytes] : raw) {
    if (bytes.size() < 16) continue;  // nothing that short identifies a key
    out.emplace_back(label + " (raw)", bytes);
    out.emplace_back(label + " (hex)", to_hex(bytes));
    out.emplace_back(label + " (HEX)", to_hex(bytes, true));
    out.emplace_back(label + " (base64)", to_base64(bytes));
  }
  return out;
}

std::string openssl_text(const fs::path& cert_pem) {
  // -nameopt oneline ("CN = x"): the default before OpenSSL 3.2, which changed it to
  // utf8,sep_comma_plus_space ("CN=x").
  auto r =
      run({"openssl", "x509", "-noout", "-text", "-nameopt", "oneline", "-in", cert_pem.string()});
  if (r.exit_code != 0) return "openssl x509 failed: " + r.err;
  return r.out;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

Json::Value parse_json(const std::string& text) {
  Json::Value v;
  Json::CharReaderBuilder b;
  std::unique_ptr<Json::CharReader> r(b.newCharReader());
  r->parse(text.data(), text.data() + text.size(), &v, nullptr);
  return v;
}

RunResult make_server_cert(const fs::path& cert, const fs::path& key) {
  return run({"env",
              "OPENSSL_CONF=/dev/null",
              "openssl",
              "req",
              "-x509",
              "-newkey",
              "ec",
              "-pkeyopt",
              "ec_paramgen_curve:P-256",
              "-nodes",
              "-keyout",
              key.string(),
              "-out",
              cert.string(),
              "-subj",
              "/CN=localhost",
              "-addext",
              "subjectAltName=IP:127.0.0.1,DNS:localhost",
              "-days",
              "2"});
}

}  // namespace cvtest

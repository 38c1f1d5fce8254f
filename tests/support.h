// Helpers shared by the test files: private temp dirs, running programs with an argument
// vector (no shell), files, directory snapshots and the bits of OpenSSL the tests use to
// look at what the vault produced.
#pragma once

#include <json/json.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cvtest {

namespace fs = std::filesystem;

// PIN used by every test vault, and the Argon2id cost that keeps tests fast
// (libsodium's minimums: ops >= 1, mem >= 8 KiB).
inline constexpr std::string_view kPin = "test-pin-4711";
inline constexpr uint64_t kKdfOps = 1;
inline constexpr uint64_t kKdfMemBytes = 8 * 1024;

// A fresh mkdtemp'd directory ($TMPDIR or /tmp), removed with everything in it when the
// object goes away. Each test makes its own, so tests run in parallel.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(std::string_view name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;      // the signal that ended it, 0 otherwise
  bool timed_out = false;
  std::string out;
  std::string err;
  // Lines of stderr (without their newline); an empty trailing piece is dropped.
  std::vector<std::string> err_lines() const;
};

// Runs argv[0] (looked up in PATH when it has no slash) with the remaining arguments,
// feeding `input` on stdin, capturing stdout and stderr. Bounded by `timeout`: a child
// still running then is killed with SIGKILL and reported as timed out.
RunResult run(const std::vector<std::string>& argv, std::string_view input = {},
              std::chrono::seconds timeout = std::chrono::seconds(180));

// Starts a program with stdin, stdout and stderr on /dev/null; returns its pid.
pid_t spawn_quiet(const std::vector<std::string>& argv);
// Starts a program with stdin on /dev/null and stdout and stderr written to the given
// files (created or truncated); returns its pid. For servers whose log a test reads.
pid_t spawn_logged(const std::vector<std::string>& argv, const fs::path& out, const fs::path& err);

// A loopback TLS server's own certificate and key (EC P-256, self-signed, CN=localhost,
// subjectAltName IP:127.0.0.1 and DNS:localhost, two days), made by `openssl req`; the
// run, for the test to check.
RunResult make_server_cert(const fs::path& cert, const fs::path& key);

// Path of the certvault CLI under test.
std::string cli();

std::string read_file(const fs::path& path);
std::vector<uint8_t> read_bytes(const fs::path& path);
// Writes (creating or truncating) with the given mode.
void write_file(const fs::path& path, std::string_view content, mode_t mode = 0600);
// Overwrites content in place, keeping the file's inode and mode.
void overwrite_in_place(const fs::path& path, std::string_view content);
// A PIN (or password, or recovery secret) file as a user writes it: `echo SECRET > file`.
fs::path write_secret_file(const fs::path& path, std::string_view secret);
mode_t file_mode(const fs::path& path);  // permission bits only

// Every regular file under a directory: relative path -> content, plus the permission
// bits of every file and directory, to assert "byte-for-byte unchanged".
struct Snapshot {
  std::map<std::string, std::string> files;
  std::map<std::string, mode_t> modes;
  bool operator==(const Snapshot&) const = default;
};
Snapshot snapshot(const fs::path& dir);
// Human description of what differs ("" when equal), for assertion messages.
std::string describe_difference(const Snapshot& before, const Snapshot& after);
// Writes every file of a snapshot back (content and mode), and removes files that are
// not in it.
void restore(const fs::path& dir, const Snapshot& snap);

// Dates as the CLI takes them.
std::string date_in_days(int days);  // "YYYY-MM-DD", UTC, today + days
int64_t end_of_day_utc(const std::string& yyyy_mm_dd);
// As `openssl x509 -enddate` prints a time: "Jun  3 23:59:59 2027 GMT".
std::string openssl_time(int64_t t);

// The first PEM block of the given type ("CERTIFICATE") in text, or "" when none.
std::string pem_block(std::string_view text, std::string_view type = "CERTIFICATE");

// --- OpenSSL values -------------------------------------------------------------------
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

X509Ptr x509_from_der(const std::vector<uint8_t>& der);
X509Ptr x509_from_pem(std::string_view pem);
std::string der_to_pem(const std::vector<uint8_t>& der);  // CERTIFICATE
std::string x509_to_pem(X509* cert);
std::string key_to_pem(EVP_PKEY* key);  // PKCS#8, unencrypted
PkeyPtr generate_ec_key();
// A client-auth certificate for `key`, self-signed, valid from now+not_before_offset to
// now+not_after_offset seconds (offsets may be negative: an already expired certificate).
// With `ca`, a CA certificate (CA:TRUE, keyCertSign) instead.
X509Ptr make_self_signed(EVP_PKEY* key, const std::string& cn, long not_before_offset,
                         long not_after_offset, bool ca = false);
// A CA certificate of a fresh key, "Other CA", that issued nothing of the vault's, written
// as PEM to `dir`/other-ca.pem; that path, or empty when it could not be made.
fs::path write_other_ca(const fs::path& dir);

// Private key encodings that must never appear in a vault file: PKCS#8 DER,
// the traditional DER, the raw private scalar/seed/exponent, and their hex and base64
// spellings. Each with a label for messages.
std::vector<std::pair<std::string, std::string>> secret_encodings(EVP_PKEY* key);

bool contains(const std::string& haystack, const std::string& needle);
// A JSON document as the CLI or the agent prints it; null when it does not parse.
Json::Value parse_json(const std::string& text);

std::string to_hex(std::string_view bytes, bool upper = false);
std::string to_base64(std::string_view bytes);

// Lines of `openssl x509 -text` that matter here, as one string.
std::string openssl_text(const fs::path& cert_pem);

}  // namespace cvtest

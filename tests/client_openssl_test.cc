// Programs on the system's OpenSSL 3 that take only a key file, with the provider loaded
// from OPENSSL_CONF and the URI-in-PEM key file (`certvault uri --pem`): Python's `ssl`
// (`SSLContext.load_cert_chain(CERT, KEY)`) and curl (`--cert CERT --key KEY`), in mutual
// TLS against `openssl s_server -Verify 1`. Also curl 8.12 and later taking both by URI
// from the provider (`--engine certvault --cert-type PROV --key-type PROV`). With a PIN
// source in-process, and with none through the agent, as another user. Loopback only.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>

#include "agent_support.h"
#include "client_support.h"

namespace cvtest {
namespace {

// Connects to 127.0.0.1:PORT trusting CA, presents CERT and KEY, sends one request and
// prints the answer.
constexpr const char* kClient = R"(import socket, ssl, sys
cert, key, ca, port = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.load_cert_chain(cert, key)
with socket.create_connection(("127.0.0.1", int(port)), timeout=30) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
sys.stdout.write(answer.decode("utf-8", "replace"))
)";

enum class Client { kPython, kCurl };

// The client's command line given the port of a fresh s_server, run through `launcher`
// against it, trusting server.pem from `files`; the server verified the vault certificate.
void expect_accepted(const std::function<std::vector<std::string>(const std::string&)>& client,
                     const std::vector<std::string>& launcher, const fs::path& files,
                     const fs::path& server_dir, const fs::path& server_key,
                     const fs::path& vault_ca) {
  auto server = TlsServer::start(server_dir, files / "server.pem", server_key, vault_ca);
  ASSERT_TRUE(server);
  std::vector<std::string> argv = launcher;
  for (const std::string& a : client(std::to_string(server->port()))) argv.push_back(a);
  auto r = run(argv, {}, 60s);
  const std::string log = server->log();
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err << "\nserver:\n" << log;
  EXPECT_TRUE(contains(r.out, "Subject: CN=api\n")) << r.out;
  EXPECT_TRUE(contains(log, "depth=0 CN = api\nverify return:1")) << log;
}

// The client presenting api.crt with the key file api.key from `files`.
void expect_presents(Client client, const std::vector<std::string>& launcher, const fs::path& files,
                     const fs::path& server_dir, const fs::path& server_key,
                     const fs::path& vault_ca) {
  const std::string cert = (files / "api.crt").string(), key = (files / "api.key").string(),
                    ca = (files / "server.pem").string();
  expect_accepted(
      [&](const std::string& port) -> std::vector<std::string> {
        if (client == Client::kPython)
          return {"/usr/bin/python3", "-c", kClient, cert, key, ca, port};
        return {"curl",       "--silent", "--show-error",
                "--max-time", "30",       "--cacert",
                ca,           "--cert",   cert,
                "--key",      key,        "https://127.0.0.1:" + port + "/"};
      },
      launcher, files, server_dir, server_key, vault_ca);
}

// curl with the certificate and key by URI from the provider, which it loads by name (from
// OPENSSL_MODULES) into a library context of its own: no openssl.cnf is read there, so a
// PIN source is in the key's URI or the key is the agent's. The tool splits --cert at a
// colon (CERT:PASSWORD) unless the colon is escaped; --key it takes whole.
void expect_curl_provider_presents(const std::vector<std::string>& launcher,
                                   const std::string& key_uri, const fs::path& files,
                                   const fs::path& server_dir, const fs::path& server_key,
                                   const fs::path& vault_ca) {
  const std::string ca = (files / "server.pem").string();
  expect_accepted(
      [&](const std::string& port) -> std::vector<std::string> {
        return {"curl",
                "--silent",
                "--show-error",
                "--max-time",
                "30",
                "--cacert",
                ca,
                "--engine",
                "certvault",
                "--cert-type",
                "PROV",
                "--cert",
                "certvault\\:api",
                "--key-type",
                "PROV",
                "--key",
                key_uri,
                "https://127.0.0.1:" + port + "/"};
      },
      launcher, files, server_dir, server_key, vault_ca);
}

// Why the system's curl cannot take a key by URI from a provider (--cert-type PROV came
// in curl 8.12), or empty when it can.
std::string curl_without_provider_types() {
  auto r = run({"curl", "--version"});
  int major = 0, minor = 0;
  if (r.exit_code != 0 || std::sscanf(r.out.c_str(), "curl %d.%d", &major, &minor) != 2)
    return "curl --version does not say its version";
  if (major > 8 || (major == 8 && minor >= 12)) return {};
  return "curl " + std::to_string(major) + "." + std::to_string(minor) +
         " has no --cert-type PROV (8.12 and later; the Debian 13 run has it)";
}

// The certificate, the URI-in-PEM key file and the server's certificate, in `files`.
void write_python_files(const std::vector<std::string>& cv_prefix, const fs::path& files,
                        const fs::path& server_key) {
  std::vector<std::string> show = cv_prefix;
  for (const char* a : {"show", "api", "--pem"}) show.push_back(a);
  auto cert = run(show);
  ASSERT_EQ(cert.exit_code, 0) << cert.err;
  write_file(files / "api.crt", cert.out, 0644);
  std::vector<std::string> uri = cv_prefix;
  for (const std::string& a : {std::string("uri"), std::string("api"), std::string("--pem"),
                               std::string("-o"), (files / "api.key").string()})
    uri.push_back(a);
  auto written = run(uri);
  ASSERT_EQ(written.exit_code, 0) << written.err;
  auto made = make_server_cert(files / "server.pem", server_key);
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ::chmod((files / "server.pem").c_str(), 0644);
}

class UriInPem : public VaultTest {
 protected:
  void presents_in_process() {
    issue("api", 100);
    const fs::path pin = write_secret_file(tmp_ / "pin", kPin);
    write_python_files({cli(), "--vault", dir_.string(), "--pin-file", pin.string()}, tmp_.path(),
                       tmp_ / "server.key");
    if (HasFatalFailure()) return;
    auto ca = vault().ca_certificate_der();
    ASSERT_TRUE(ca) << why(ca);
    write_file(tmp_ / "vault-ca.pem", der_to_pem(*ca));
    const fs::path conf = tmp_ / "openssl.cnf";
    write_file(conf,
               provider_openssl_cnf(kProviderDir, "pin-source = file:" + pin.string() + "\n"));
    expect_presents(client_, provider_env(dir_, conf), tmp_.path(), tmp_.path(),
                    tmp_ / "server.key", tmp_ / "vault-ca.pem");
    EXPECT_EQ(vault().pin_failures(), 0);
  }

  Client client_ = Client::kPython;
};

TEST_F(UriInPem, PythonSslLoadCertChainTakesTheKeyFile) {
  client_ = Client::kPython;
  presents_in_process();
}

TEST_F(UriInPem, CurlTakesTheKeyFile) {
#ifdef CERTVAULT_SANITIZER_RUNTIME
  // curl hangs at start under a preloaded sanitizer runtime (see pkcs11_tls_test.cc).
  GTEST_SKIP() << "curl hangs under a preloaded sanitizer runtime";
#endif
  client_ = Client::kCurl;
  presents_in_process();
}

TEST_F(UriInPem, CurlProvTypesTakeTheUrisWithThePinSourceInTheKeyUri) {
#ifdef CERTVAULT_SANITIZER_RUNTIME
  GTEST_SKIP() << "curl hangs under a preloaded sanitizer runtime";
#endif
  if (const std::string why_not = curl_without_provider_types(); !why_not.empty())
    GTEST_SKIP() << why_not;
  issue("api", 100);
  const fs::path pin = write_secret_file(tmp_ / "pin", kPin);
  auto made = make_server_cert(tmp_ / "server.pem", tmp_ / "server.key");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto ca = vault().ca_certificate_der();
  ASSERT_TRUE(ca) << why(ca);
  write_file(tmp_ / "vault-ca.pem", der_to_pem(*ca));
  std::vector<std::string> launcher = provider_env(dir_);
  launcher.push_back(std::string("OPENSSL_MODULES=") + kProviderDir);
  expect_curl_provider_presents(launcher, "certvault:api?pin-source=file:" + pin.string(),
                                tmp_.path(), tmp_.path(), tmp_ / "server.key",
                                tmp_ / "vault-ca.pem");
  EXPECT_EQ(vault().pin_failures(), 0);
}

class AgentUriInPem : public AgentTest {
 protected:
  void presents_through_agent() {
    issue("api", 100);
    start_agent();
    if (HasFatalFailure()) return;
    ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
    unlock();
    write_python_files({cli(), "--vault", dir_.string(), "--pin-file", pin_file_.string()}, out_,
                       tmp_ / "server.key");
    if (HasFatalFailure()) return;
    const std::string owner = std::to_string(client_uid_) + ":" + std::to_string(client_gid_);
    ASSERT_EQ(run({"chown", owner, (out_ / "api.key").string()}).exit_code, 0);
    const fs::path conf = out_ / "openssl.cnf";
    write_file(conf,
               provider_openssl_cnf(run_dir_ / "ossl-modules",
                                    "agent-socket = " + socket_.string() + "\n"),
               0644);
    expect_presents(client_, as_client({"env", "OPENSSL_CONF=" + conf.string()}), out_, tmp_.path(),
                    tmp_ / "server.key", vault_ca_);
    EXPECT_TRUE(contains(audit_log(), exe_)) << audit_log();
  }

  Client client_ = Client::kPython;
  std::string exe_;  // as the audit log names the program that signed
};

TEST_F(AgentUriInPem, PythonSslWithNoPinAsAnotherUser) {
  client_ = Client::kPython;
  exe_ = "\"exe\":\"/usr/bin/python3";
  presents_through_agent();
}

TEST_F(AgentUriInPem, CurlProvTypesTakeTheUrisWithNoPinAsAnotherUser) {
#ifdef CERTVAULT_SANITIZER_RUNTIME
  GTEST_SKIP() << "curl hangs under a preloaded sanitizer runtime";
#endif
  if (const std::string why_not = curl_without_provider_types(); !why_not.empty())
    GTEST_SKIP() << why_not;
  issue("api", 100);
  start_agent();
  if (HasFatalFailure()) return;
  ASSERT_EQ(cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)}).exit_code, 0);
  unlock();
  auto made = make_server_cert(out_ / "server.pem", tmp_ / "server.key");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ::chmod((out_ / "server.pem").c_str(), 0644);
  expect_curl_provider_presents(
      as_client({"env", "OPENSSL_MODULES=" + (run_dir_ / "ossl-modules").string()}),
      "certvault:api", out_, tmp_.path(), tmp_ / "server.key", vault_ca_);
  EXPECT_TRUE(contains(audit_log(), "\"exe\":\"/usr/bin/curl\"")) << audit_log();
}

TEST_F(AgentUriInPem, CurlWithNoPinAsAnotherUser) {
#ifdef CERTVAULT_SANITIZER_RUNTIME
  // curl hangs at start under a preloaded sanitizer runtime (see pkcs11_tls_test.cc).
  GTEST_SKIP() << "curl hangs under a preloaded sanitizer runtime";
#endif
  client_ = Client::kCurl;
  exe_ = "\"exe\":\"/usr/bin/curl\"";
  presents_through_agent();
}

}  // namespace
}  // namespace cvtest

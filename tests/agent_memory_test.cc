// What a core of the agent gives away: after `certvault lock`, a core of the still-running
// agent holds neither the PIN nor a private key; taken while the vault is unlocked, the
// same search finds the key the agent signed with, so the search can see what it looks for.
#include <elf.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "agent_client_support.h"
#include "agent_support.h"

namespace cvtest {
namespace {

using namespace std::chrono_literals;

// A PIN no other byte string in the process is likely to equal: 24 random letters and
// digits (~143 bits), so a match in a core is this PIN and nothing else.
std::string distinctive_pin() {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char random[24];
  if (RAND_bytes(random, sizeof random) != 1) return {};
  std::string pin;
  for (unsigned char r : random) pin += kAlphabet[r % (sizeof kAlphabet - 1)];
  return pin;
}

// Where a needle was found in a core: the file offset, the process address it came from
// (from the core's PT_LOAD headers), the mapping that held it (from /proc/PID/maps taken
// with the core) and the bytes around it, to tell whose copy it is.
struct Hit {
  std::string label;
  uint64_t offset = 0;
  uint64_t address = 0;
  std::string mapping;
  std::string around;  // hex, 48 bytes either side
};

struct Load {
  uint64_t offset, vaddr, size;
};

// A deleter type, not decltype(&fclose): glibc 2.41 declares fclose with attributes that
// g++ 14 warns about dropping in a template argument.
struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};

std::vector<Load> load_segments(const fs::path& core) {
  std::vector<Load> out;
  std::unique_ptr<FILE, FileCloser> f(std::fopen(core.c_str(), "rb"));
  Elf64_Ehdr eh{};
  if (!f || std::fread(&eh, sizeof eh, 1, f.get()) != 1 ||
      std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
    return out;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph{};
    if (std::fseek(f.get(), static_cast<long>(eh.e_phoff + i * eh.e_phentsize), SEEK_SET) != 0 ||
        std::fread(&ph, sizeof ph, 1, f.get()) != 1)
      break;
    if (ph.p_type == PT_LOAD && ph.p_filesz) out.push_back({ph.p_offset, ph.p_vaddr, ph.p_filesz});
  }
  return out;
}

std::string mapping_of(const std::string& maps, uint64_t address) {
  size_t at = 0;
  while (at < maps.size()) {
    size_t nl = maps.find('\n', at);
    if (nl == std::string::npos) nl = maps.size();
    const std::string line = maps.substr(at, nl - at);
    unsigned long long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx", &lo, &hi) == 2 && address >= lo && address < hi)
      return line;
    at = nl + 1;
  }
  return "(no mapping)";
}

// Every occurrence of every needle in the core, read in 4 MiB pieces that overlap by the
// longest needle less one byte, so a match across two pieces is still seen.
std::vector<Hit> search_core(const fs::path& core, const std::string& maps,
                             const std::vector<std::pair<std::string, std::string>>& needles) {
  std::vector<Hit> hits;
  size_t longest = 0;
  for (const auto& [label, n] : needles) longest = std::max(longest, n.size());
  if (longest == 0) return hits;
  const auto loads = load_segments(core);
  std::unique_ptr<FILE, FileCloser> f(std::fopen(core.c_str(), "rb"));
  if (!f) return hits;
  constexpr size_t kPiece = 4 << 20;
  std::vector<char> buf(kPiece + longest);
  size_t kept = 0;    // bytes carried over from the previous piece
  uint64_t base = 0;  // file offset of buf[0]
  for (int pieces = 0; pieces < (1 << 20); ++pieces) {  // 4 TiB: beyond any core here
    const size_t got = std::fread(buf.data() + kept, 1, kPiece, f.get());
    const size_t have = kept + got;
    for (const auto& [label, needle] : needles) {
      const char* from = buf.data();
      const char* end = buf.data() + have;
      while (static_cast<size_t>(end - from) >= needle.size()) {
        const void* m =
            ::memmem(from, static_cast<size_t>(end - from), needle.data(), needle.size());
        if (!m) break;
        const char* at = static_cast<const char*>(m);
        const size_t pos = static_cast<size_t>(at - buf.data());
        // A match wholly inside the carried-over bytes was reported with the last piece.
        if (pos + needle.size() > kept) {
          Hit h;
          h.label = label;
          h.offset = base + pos;
          for (const auto& l : loads)
            if (h.offset >= l.offset && h.offset < l.offset + l.size)
              h.address = l.vaddr + (h.offset - l.offset);
          h.mapping = mapping_of(maps, h.address);
          const size_t lo = pos >= 48 ? pos - 48 : 0;
          const size_t hi = std::min(have, pos + needle.size() + 48);
          h.around = to_hex(std::string_view(buf.data() + lo, hi - lo));
          hits.push_back(std::move(h));
        }
        from = at + 1;
      }
    }
    if (got == 0) break;
    kept = std::min(have, longest - 1);
    std::memmove(buf.data(), buf.data() + have - kept, kept);
    base += have - kept;
  }
  return hits;
}

std::string describe(const std::vector<Hit>& hits) {
  std::string out;
  for (const auto& h : hits) {
    char where[64];
    std::snprintf(where, sizeof where, "0x%llx", static_cast<unsigned long long>(h.address));
    out += "  " + h.label + " at core offset " + std::to_string(h.offset) + ", address " + where +
           " in " + h.mapping + "\n    around: " + h.around + "\n";
  }
  return out;
}

class AgentMemory : public AgentTest {
 protected:
  void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
    // Every mapping of an ASan process is dumped with dump-excluded-mappings on, including
    // its shadow memory (terabytes of reserved address space): no core to search.
    GTEST_SKIP() << "a full core of an ASan-built agent would include ASan's shadow memory";
#endif
    AgentTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // A vault of its own, made by the CLI with a PIN nothing else in the process equals.
    pin_ = distinctive_pin();
    ASSERT_EQ(pin_.size(), 24u);
    vault_.reset();
    fs::remove_all(dir_);
    pin_file_ = write_secret_file(tmp_ / "pin", pin_);
    auto init = cv({"init", "--label", "mem", "--kdf-ops", "1", "--kdf-mem-kib", "8"});
    ASSERT_EQ(init.exit_code, 0) << init.err;
    auto ca = cv({"ca", "create", "--end-date", "+3650d"});
    ASSERT_EQ(ca.exit_code, 0) << ca.err;
    auto made = cv({"create", "api", "--end-date", "+90d"});
    ASSERT_EQ(made.exit_code, 0) << made.err;
    // Exported once, to learn the private key the agent will hold.
    const fs::path p12 = tmp_ / "api.p12";
    auto exported = cv({"--json", "export", "api", "-o", p12.string()});
    ASSERT_EQ(exported.exit_code, 0) << exported.err;
    const std::string password = parse_json(exported.out)["password"].asString();
    ASSERT_FALSE(password.empty()) << exported.out;
    scalar_ = private_scalar(p12, password);
    ASSERT_EQ(scalar_.size(), 32u);
    fs::remove(p12);
    auto allowed = cv({"access", "api", "allow", "--uid", std::to_string(client_uid_)});
    ASSERT_EQ(allowed.exit_code, 0) << allowed.err;
  }

  // The P-256 private value, 32 bytes big-endian, from the PKCS#12 file.
  static std::string private_scalar(const fs::path& p12, const std::string& password) {
    const auto der = read_bytes(p12);
    const unsigned char* p = der.data();
    std::unique_ptr<PKCS12, decltype(&PKCS12_free)> pk(
        d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())), PKCS12_free);
    if (!pk) return {};
    EVP_PKEY* key = nullptr;
    X509* cert = nullptr;
    if (PKCS12_parse(pk.get(), password.c_str(), &key, &cert, nullptr) != 1) return {};
    PkeyPtr owned(key);
    X509Ptr owned_cert(cert);
    BIGNUM* d = nullptr;
    if (!key || EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1) return {};
    std::string out(32, '\0');
    const int n = BN_bn2binpad(d, reinterpret_cast<unsigned char*>(out.data()), 32);
    BN_clear_free(d);
    return n == 32 ? out : std::string();
  }

  // The forms of the private key and PIN a copy in memory would have:
  // - the scalar big-endian, as in every DER encoding of the key (PKCS#8 from the sealed
  //   blob, the ECPrivateKey inside it, OpenSSL's decoder buffers);
  // - the scalar little-endian, as OpenSSL's BIGNUM holds it: an array of 64-bit limbs,
  //   least significant first, each little-endian on x86_64, which makes the whole number
  //   the byte-reversed big-endian form (the key's EC_KEY priv_key, its copies in BN_CTX);
  // - the PIN's bytes as typed (the unlock request's frame carries them as they are).
  std::vector<std::pair<std::string, std::string>> needles() const {
    std::string reversed(scalar_.rbegin(), scalar_.rend());
    return {{"private scalar (big-endian)", scalar_},
            {"private scalar (little-endian)", reversed},
            {"PIN", pin_}};
  }

  // A core of the running agent by gdb's gcore; libsodium's guarded pages and OpenSSL's
  // secure heap are marked MADV_DONTDUMP, and gcore leaves such mappings out unless told
  // otherwise, so without dump-excluded-mappings the search would pass whatever the agent
  // keeps there. The agent goes on running (gdb detaches).
  std::vector<Hit> core_hits(const std::string& name) {
    const fs::path core = tmp_ / name;
    const std::string pid = std::to_string(agent_pid());
    const std::string maps = read_file("/proc/" + pid + "/maps");
    auto r = run({"gdb", "-nx", "-batch", "-p", pid, "-ex", "set dump-excluded-mappings on", "-ex",
                  "gcore " + core.string()},
                 {}, 300s);
    EXPECT_TRUE(fs::exists(core)) << "gcore made no core: " << r.out << r.err;
    if (!fs::exists(core)) return {};
    EXPECT_GT(fs::file_size(core), 1u << 20);
    auto hits = search_core(core, maps, needles());
    fs::remove(core);
    return hits;
  }

  pid_t agent_pid() {
    // The agent's own answer to `certvault status`: the process that holds the keys.
    auto r = cv({"status", "--json"}, false);
    return static_cast<pid_t>(parse_json(r.out)["pid"].asInt());
  }

  std::string pin_;
  std::string scalar_;
};

// Can fail: the unlocked core must contain the scalar (else the search sees nothing and
// proves nothing), and the locked one must not. Checked once each way: without
// `set dump-excluded-mappings on` the unlocked core showed no scalar (the only copy is in
// OpenSSL's secure heap) and the test failed; with the agent's lock not dropping its keys
// the locked core showed the little-endian scalar and the test failed.
TEST_F(AgentMemory, CoreAfterLockHoldsNeitherThePinNorThePrivateKey) {
  start_agent();
  ASSERT_FALSE(HasFatalFailure());
  unlock();
  ASSERT_FALSE(HasFatalFailure());
  // One signature as the client user, so the agent has decrypted the key.
  const pid_t child = fork_child(60s, [&]() -> std::string {
    if (!become(kClientUser, client_uid_, client_gid_)) return "cannot become the client user";
    return resolve_sign_verify(std::make_shared<certvault::agent::Client>(socket_), "api", 1,
                               "one signature");
  });
  ASSERT_GT(child, 0);
  const int status = wait_children({child}, 90s).at(child);
  ASSERT_TRUE(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << describe_status(status);

  const auto unlocked = core_hits("unlocked.core");
  ASSERT_FALSE(HasFailure());
  bool found_key = false;
  for (const auto& h : unlocked) found_key |= contains(h.label, "scalar");
  ASSERT_TRUE(found_key) << "the unlocked agent's core does not show the key it signs with: the "
                            "search is broken, so a clean core after lock would prove nothing";
  std::printf("unlocked core:\n%s", describe(unlocked).c_str());
  // The agent keeps the key derived from the PIN, never the PIN itself.
  for (const auto& h : unlocked) EXPECT_NE(h.label, "PIN") << describe({h});

  auto locked = cv({"lock"}, false);
  ASSERT_EQ(locked.exit_code, 0) << locked.err;
  const auto after = core_hits("locked.core");
  ASSERT_FALSE(HasFailure());
  EXPECT_TRUE(after.empty()) << "after certvault lock the agent's memory still holds:\n"
                             << describe(after);
}

}  // namespace
}  // namespace cvtest

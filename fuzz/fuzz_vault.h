// A throwaway vault for the fuzz targets that need one (the PKCS#11 module, the URI-in-PEM
// decoder, import): made once per fuzzer process under $TMPDIR with the cheapest Argon2id,
// a vault CA and one entry of each key type, and removed when the process exits. Its PIN
// is a fixture, no secret.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "vault.h"

namespace certvault::fuzz {

inline constexpr std::string_view kPin = "fuzz-pin-4711";
// Entries of the fixture vault, one per key type.
inline constexpr std::string_view kEcEntry = "fuzz-ec";
inline constexpr std::string_view kEd25519Entry = "fuzz-ed25519";

[[noreturn]] inline void setup_failed(const std::string& what) {
  std::fprintf(stderr, "fuzz fixture: %s\n", what.c_str());
  std::abort();
}

struct Fixture {
  std::filesystem::path dir;
  Vault vault;  // unlocked
};

// The vault; `CERTVAULT_VAULT` names its directory, so that the module and the provider
// find it as their default vault.
inline Fixture& fixture_vault() {
  static Fixture fixture = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string base = std::string(tmp && *tmp ? tmp : "/tmp") + "/certvault-fuzz-XXXXXX";
    if (!::mkdtemp(base.data())) setup_failed("cannot make a temporary directory");
    std::filesystem::path root(base);
    static std::filesystem::path remove_at_exit;
    remove_at_exit = root;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(remove_at_exit, ec);
    });
    const std::filesystem::path vault_dir = root / "vault";
    InitOptions options;
    options.label = "fuzz";
    options.kdf = KdfParams{1, 8 * 1024};  // the cheapest Argon2id libsodium allows
    auto made = Vault::init(vault_dir, SecureBytes::from(kPin), options);
    if (!made) setup_failed(made.error().message);
    Vault& vault = made->first;
    CaRequest ca;
    ca.not_after = now() + 3650 * 86400;
    ca.key_type = KeyType::kEcP256;
    if (auto r = vault.create_ca(ca); !r) setup_failed(r.error().message);
    for (auto [nickname, type] :
         {std::pair{kEcEntry, KeyType::kEcP256}, std::pair{kEd25519Entry, KeyType::kEd25519}}) {
      IssueRequest req;
      req.nickname = std::string(nickname);
      req.not_after = now() + 365 * 86400;
      req.key_type = type;
      if (auto r = vault.create(req); !r) setup_failed(r.error().message);
    }
    ::setenv("CERTVAULT_VAULT", vault_dir.c_str(), 1);
    ::setenv("CERTVAULT_PKCS11_CONF", "/nonexistent", 1);
    // Never an agent that happens to run for this user: the vault is opened in-process.
    ::setenv("CERTVAULT_AGENT_SOCK", (root / "no-agent").c_str(), 1);
    return Fixture{vault_dir, std::move(vault)};
  }();
  return fixture;
}

}  // namespace certvault::fuzz

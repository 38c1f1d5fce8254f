// One function per command. Each checks its arguments before it opens the vault or asks
// for a PIN, so a typo never costs a PIN prompt (or a counted PIN failure).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli.h"

namespace certvault::cli {

// --- vault (cmd_vault.cc) ---------------------------------------------------------------
struct InitArgs {
  std::optional<std::string> label;
  std::optional<int64_t> kdf_ops;      // hidden: cheap Argon2id for tests
  std::optional<int64_t> kdf_mem_kib;  // hidden
};
Outcome cmd_init(const Globals& globals, const InitArgs& args);

struct PasswdArgs {
  std::string new_pin_file;
};
Outcome cmd_passwd(const Globals& globals, const PasswdArgs& args);

struct UnlockResetArgs {
  std::string recovery_file;
  std::string new_pin_file;
};
Outcome cmd_unlock_reset(const Globals& globals, const UnlockResetArgs& args);

Outcome cmd_version(const Globals& globals);
std::string version_line();

// --- policy (cmd_policy.cc) -------------------------------------------------------------
Outcome cmd_policy_show(const Globals& globals);
struct PolicySetArgs {
  std::optional<std::string> max_end_date;
  std::optional<std::string> default_key_type;
  std::optional<std::string> default_hash;
  std::optional<std::string> export_rule;
  std::optional<std::string> renew_before;
  std::optional<std::string> renew_at;
  bool renew_off = false;
  std::optional<std::string> max_lifetime;  // "90d" or "none"
  std::optional<int64_t> min_pin_length;
};
Outcome cmd_policy_set(const Globals& globals, const PolicySetArgs& args);
Outcome cmd_policy_clear(const Globals& globals);

// --- CA (cmd_ca.cc) ---------------------------------------------------------------------
struct CaCreateArgs {
  std::string end_date;
  std::string subject;
  std::optional<std::string> key_type;
  bool replace = false;
};
Outcome cmd_ca_create(const Globals& globals, const CaCreateArgs& args);
Outcome cmd_ca_show(const Globals& globals);
struct CaImportArgs {
  std::string cert_file;
  std::string key_file;
};
Outcome cmd_ca_import(const Globals& globals, const CaImportArgs& args);
// certvault ca crl [-o FILE] [--next-update 7d]: a CRL signed by the vault CA.
struct CaCrlArgs {
  std::string out = "-";  // replaced atomically, 0644; "-" = stdout
  std::string next_update = "7d";
};
Outcome cmd_ca_crl(const Globals& globals, const CaCrlArgs& args);

// --- entries that gain a key or certificate (cmd_issue.cc) ------------------------------
struct CreateArgs {
  std::string nickname;
  std::string end_date;
  std::optional<std::string> key_type;
  std::optional<std::string> hash;
  std::string subject;
  std::string san;  // "DNS:a,URI:b"; carried over by rotate
  bool self_signed = false;
  std::string issuer;  // an outside issuer (CMP): end_date becomes optional
};
Outcome cmd_create(const Globals& globals, const CreateArgs& args);

struct CsrArgs {
  std::string nickname;
  std::string out;
  std::string subject;
  std::string san;
  std::optional<std::string> key_type;
  std::optional<std::string> hash;
};
Outcome cmd_csr(const Globals& globals, const CsrArgs& args);

struct AttachArgs {
  std::string nickname;
  std::string cert_file;
};
Outcome cmd_attach(const Globals& globals, const AttachArgs& args);

struct ImportArgs {
  std::string file;
  std::string nickname;
  std::string password_file;
};
Outcome cmd_import(const Globals& globals, const ImportArgs& args);

struct RotateArgs {
  std::string nickname;
  std::optional<std::string> end_date;
};
Outcome cmd_rotate(const Globals& globals, const RotateArgs& args);

// --- outside issuers (cmd_issuer.cc) ----------------------------------------------------
struct IssuerAddArgs {
  std::string name;
  std::string cmp_url;
  std::string cmp_ref;
  std::string cmp_secret_file;
  std::string cmp_cert;  // a nickname
  std::string acme_url;  // an ACME directory, instead of cmp_url
  std::string http01_listen;
  std::string dns01_hook;  // a shell command
  std::string eab;         // KID:FILE
  std::string trust;       // PEM file
  std::string server_ca;
};
Outcome cmd_issuer_add(const Globals& globals, const IssuerAddArgs& args);
Outcome cmd_issuer_list(const Globals& globals);
Outcome cmd_issuer_show(const Globals& globals, const std::string& name);
Outcome cmd_issuer_remove(const Globals& globals, const std::string& name);
// create NICKNAME --issuer NAME: an ir at the outside issuer, in this process.
Outcome cmd_create_from_issuer(const Globals& globals, const CreateArgs& args);

// --- renewal and file targets (cmd_renew.cc) --------------------------------------------
struct PublishArgs {
  std::string nickname;
  std::optional<std::string> cert, chain, fullchain, key_uri;
  std::optional<std::string> owner;  // user name or uid
  std::optional<std::string> mode;   // octal, default 0644
  bool list = false;
  bool remove = false;
};
Outcome cmd_publish(const Globals& globals, const PublishArgs& args);
struct RenewRuleArgs {
  std::string nickname;
  std::optional<std::string> before;  // "30d"
  std::optional<std::string> at;      // "2/3"
  bool off = false;
  bool policy = false;  // follow the vault policy's rule
  std::optional<std::string> then;
  bool no_then = false;
};
Outcome cmd_renew_rule(const Globals& globals, const RenewRuleArgs& args);

struct RenewArgs {
  std::vector<std::string> nicknames;
  bool dry_run = false;
  bool revoke_old = false;
};
Outcome cmd_renew(const Globals& globals, const RenewArgs& args);

// --- entries: export and life cycle (cmd_entry.cc) --------------------------------------
struct ExportArgs {
  std::string nickname;
  std::string out;
  std::string encryption = "aes-256";
  bool chain = false;
};
Outcome cmd_export(const Globals& globals, const ExportArgs& args);
Outcome cmd_disable(const Globals& globals, const std::string& nickname);
Outcome cmd_enable(const Globals& globals, const std::string& nickname);
Outcome cmd_delete(const Globals& globals, const std::string& nickname, bool yes);
// certvault revoke NICKNAME [--generation N] --reason R
struct RevokeArgs {
  std::string nickname;
  std::optional<uint32_t> generation;  // default: the current one
  std::string reason;                  // an RFC 5280 CRLReason name
};
Outcome cmd_revoke(const Globals& globals, const RevokeArgs& args);

// --- reading without the PIN (cmd_inspect.cc) -------------------------------------------
struct ListArgs {
  std::optional<int64_t> expiring_days;
  bool names = false;  // only the nicknames, one a line (for shell completion)
  std::string sort;    // "", expiry, name, created
  std::string status;  // "", active, expired, disabled, pending, superseded
  std::string issuer;  // "", vault-ca, self-signed, external, or an outside issuer's name
};
Outcome cmd_list(const Globals& globals, const ListArgs& args);
// certvault show NICKNAME [--pem] [--chain]: details and URIs; or the current certificate
// and/or its chain as PEM, for programs that read a certificate file.
struct ShowArgs {
  std::string nickname;
  bool pem = false;    // the current generation's certificate
  bool chain = false;  // the certificates above it, issuer first
};
Outcome cmd_show(const Globals& globals, const ShowArgs& args);
// certvault uri NICKNAME [--pem] [-o FILE]: the URI OpenSSL programs use, or a PEM file
// holding only that URI (no secret) for programs that take nothing but a key file.
struct UriArgs {
  std::string nickname;
  bool pem = false;
  std::string out = "-";
};
Outcome cmd_uri(const Globals& globals, const UriArgs& args);

// --- monitoring (cmd_check.cc) ----------------------------------------------------------
// certvault check [--within DAYS] [--format text|json|prometheus] [-o FILE]: what needs a
// person, exit 0 (nothing), 1 (soon) or 2 (something expired).
struct CheckArgs {
  int64_t within_days = 30;
  std::optional<std::string> format;  // default: json with --json, else text
  std::string out = "-";              // replaced atomically; "-" = stdout
};
Outcome cmd_check(const Globals& globals, const CheckArgs& args);

// --- the agent (cmd_agent.cc) ---------------------------------------------------------
struct AgentArgs {
  std::string socket;               // default: the user's or the system socket
  bool system = false;              // the system instance: /run/certvault, 0660, no TTL
  std::vector<std::string> vaults;  // --serve DIR, repeatable; --vault adds one too
  std::string default_vault;        // the vault a URI without vault= means
  std::optional<std::string> ttl;   // default: 8h for a user, none for the system
  std::string audit_log;            // default: agent::default_audit_log
  uint64_t audit_max_bytes = 16ull << 20;
  std::string renew_every = "1h";     // the renewal pass's period, or none
  std::string summary_every = "15m";  // the journal's per-key summary, or none (at the end)
  uint64_t max_connections = 8192;    // in all; a sixteenth kept for root and the agent's user
  uint64_t max_connections_per_user = 1024;  // of one user other than those two
};
Outcome cmd_agent(const Globals& globals, const AgentArgs& args);
struct UnlockArgs {
  std::optional<std::string> ttl;
};
Outcome cmd_unlock(const Globals& globals, const UnlockArgs& args);
struct LockArgs {
  bool all = false;
};
Outcome cmd_lock(const Globals& globals, const LockArgs& args);
Outcome cmd_status(const Globals& globals);
struct AuditArgs {
  std::optional<std::string> since;
  std::optional<std::string> nickname;
  std::string file;
  bool system = false;
};
Outcome cmd_audit(const Globals& globals, const AuditArgs& args);
// certvault access NICKNAME show|allow|deny|forget|reset|public|private [--uid|--gid|--unit|--exe]
struct AccessArgs {
  std::string nickname;
  std::string action;
  std::string uid, gid, unit, exe;
};
Outcome cmd_access(const Globals& globals, const AccessArgs& args);
// A user (group) name or number as the number, in decimal.
Result<std::string> numeric_id(const std::string& text, bool group);
// "30s", "15m", "8h", "2d"; "none" (or 0) for no limit.
Result<std::optional<std::chrono::seconds>> parse_duration(const std::string& text);

// --- argument parsing shared by the commands (args.cc) ----------------------------------
Result<std::optional<Time>> parse_optional_date(const std::optional<std::string>& text);
Result<std::optional<KeyType>> parse_optional_key_type(const std::optional<std::string>& text);
Result<std::optional<Hash>> parse_optional_hash(const std::optional<std::string>& text);
Result<void> check_days(int64_t days, std::string_view option);
// Two secrets cannot both come from stdin: the first read takes all of it.
Result<void> check_stdin_once(std::string_view first_option, std::string_view first,
                              std::string_view second_option, std::string_view second);

}  // namespace certvault::cli

// certvault: the command-line front end of the keystore. This file only parses arguments
// and turns the outcome into one line and an exit code; the commands live in cmd_*.cc.
#include <openssl/crypto.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <exception>
#include <functional>
#include <iostream>
#include <string>

#include "cli.h"
#include "commands.h"
#include "ossl.h"
#include "output.h"
#include "suggest.h"

namespace certvault::cli {
namespace {

constexpr std::string_view kDateHelp = "YYYY-MM-DD (end of that day, UTC) or +Nd (N days from now)";
constexpr std::string_view kKeyTypes = "ec-p256, ec-p384, rsa-2048, rsa-3072, rsa-4096, ed25519";
constexpr std::string_view kHashes = "sha256, sha384, sha512";

using Action = std::function<Outcome()>;

// Everything the parser fills in; it outlives the parse.
struct Args {
  Globals globals;
  InitArgs init;
  CaCreateArgs ca_create;
  CaImportArgs ca_import;
  CaCrlArgs ca_crl;
  RevokeArgs revoke;
  CreateArgs create;
  CsrArgs csr;
  AttachArgs attach;
  ImportArgs import;
  ListArgs list;
  std::string nickname;  // show, disable, enable, delete
  bool delete_yes = false;
  ExportArgs exported;
  RotateArgs rotate;
  RenewRuleArgs renew_rule;
  RenewArgs renew;
  PublishArgs publish;
  CheckArgs check;
  ShowArgs show;
  UriArgs uri;
  PolicySetArgs policy_set;
  PasswdArgs passwd;
  UnlockResetArgs unlock_reset;
  AgentArgs agent;
  UnlockArgs unlock;
  LockArgs lock;
  AuditArgs audit;
  AccessArgs access;
  IssuerAddArgs issuer_add;
  std::string issuer_name;    // issuer show, remove
  bool long_running = false;  // the agent: a larger secure heap for the keys it holds
};

// No core dump, no ptrace by other users: either could expose a PIN or a private key.
void harden_process() {
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  ossl::free_at_exit();
}

// OpenSSL's secure heap (mlocked, left out of core dumps) for private key numbers: small
// for a command, larger for the agent, which holds every key it has signed with.
void init_secure_heap(bool agent) {
  (void)CRYPTO_secure_malloc_init(agent ? 4 << 20 : 1 << 16, 16);
}

// One line, and nothing a terminal would act on (escape sequences from a file or an
// argument are shown as '?').
std::string one_line(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r' || c == '\t')
      c = ' ';
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '?';
  }
  while (!text.empty() && text.back() == ' ') text.pop_back();
  return text;
}

// What the CLI's user can do about a keystore refusal that programs see too: the keystore
// says what is wrong in words for any program (OpenSSL's error queue, a PKCS#11 debug log);
// the command to run is the CLI's to say.
// The error's message, and what to do about it in the CLI's words: a program that meets the
// same error (through the provider, the module or the agent) shows the message alone.
std::string with_advice(const Error& e) {
  const std::string nickname =
      e.nickname.find(' ') == std::string::npos ? e.nickname : "'" + e.nickname + "'";
  const bool about_an_entry = e.remedy == Remedy::kEnable || e.remedy == Remedy::kAttach ||
                              e.remedy == Remedy::kShowGenerations;
  if (about_an_entry && e.nickname.empty()) return e.message;  // no command to name
  switch (e.remedy) {
    case Remedy::kNone:
    case Remedy::kCount:
      return e.message;
    case Remedy::kEnable:
      return e.message + "; run `certvault enable " + nickname + "` to use it again";
    case Remedy::kAttach:
      return e.message + "; run `certvault attach " + nickname + " CERT.pem` with the CA's answer";
    case Remedy::kShowGenerations:
      return e.message + "; `certvault show " + nickname + "` lists them";
    case Remedy::kList:
      return e.message + "; `certvault list` shows the nicknames";
    case Remedy::kInit:
      return e.message + "; create one with `certvault init` or pass --vault DIR";
    case Remedy::kRecover:
      return e.message + "; run `certvault unlock-reset` with the recovery secret";
    case Remedy::kSetUserPin:
      return e.message + "; set one with `certvault unlock-reset` and the security officer's PIN";
    case Remedy::kRewriteCounter:
      return e.message + "; run `certvault unlock-reset` with the recovery secret to rewrite it";
  }
  return e.message;
}

int report_failure(std::string_view message, int code) {
  std::cout.flush();
  std::cerr << "certvault: " << one_line(std::string(message)) << std::endl;
  return code;
}

std::string join(std::string_view a, std::string_view b) {
  return std::string(a) + std::string(b);
}

CLI::App* command(CLI::App& parent, const std::string& name, const std::string& description,
                  Action& selected, Action run) {
  CLI::App* sub = parent.add_subcommand(name, description);
  sub->callback([&selected, run = std::move(run)] { selected = run; });
  return sub;
}

void add_nickname(CLI::App* sub, std::string& target) {
  sub->add_option("NICKNAME", target, "Entry name: 1-64 letters, digits, spaces, '-', '_'")
      ->type_name("")
      ->required();
}

void add_vault_commands(CLI::App& app, Args& a, Action& selected) {
  auto* init = command(app, "init", "Create a vault; prints its recovery secret once", selected,
                       [&a] { return cmd_init(a.globals, a.init); });
  init->add_option("--label", a.init.label, "Vault label (the PKCS#11 token label)")
      ->type_name("LABEL");
  // Cheap Argon2id for tests and trials only; not in the documentation on purpose.
  init->add_option("--kdf-ops", a.init.kdf_ops, "Argon2id passes")->type_name("N")->group("");
  init->add_option("--kdf-mem-kib", a.init.kdf_mem_kib, "Argon2id memory in KiB")
      ->type_name("KIB")
      ->group("");

  auto* passwd = command(app, "passwd", "Change the PIN", selected,
                         [&a] { return cmd_passwd(a.globals, a.passwd); });
  passwd
      ->add_option("--new-pin-file", a.passwd.new_pin_file,
                   "Read the new PIN from FILE ('-' = stdin) instead of prompting twice")
      ->type_name("FILE");

  auto* reset = command(app, "unlock-reset",
                        "Clear the wrong-PIN count (and optionally set a new PIN) with the "
                        "recovery secret",
                        selected, [&a] { return cmd_unlock_reset(a.globals, a.unlock_reset); });
  reset
      ->add_option("--recovery-file", a.unlock_reset.recovery_file,
                   "Read the recovery secret from FILE ('-' = stdin) instead of prompting")
      ->type_name("FILE");
  reset
      ->add_option("--new-pin-file", a.unlock_reset.new_pin_file,
                   "Set the PIN read from FILE ('-' = stdin)")
      ->type_name("FILE");

  command(app, "version", "Print the version", selected, [&a] { return cmd_version(a.globals); });
}

void add_policy_commands(CLI::App& app, Args& a, Action& selected) {
  auto* policy = app.add_subcommand("policy", "Show or change the vault's issuing rules");
  policy->require_subcommand(1);
  command(*policy, "show", "Print the policy", selected,
          [&a] { return cmd_policy_show(a.globals); });
  auto* set = command(*policy, "set", "Change some rules; the others stay", selected,
                      [&a] { return cmd_policy_set(a.globals, a.policy_set); });
  set->add_option("--max-end-date", a.policy_set.max_end_date,
                  join("Latest end date any certificate may have: ", kDateHelp))
      ->type_name("DATE");
  set->add_option("--default-key-type", a.policy_set.default_key_type, join("One of ", kKeyTypes))
      ->type_name("TYPE");
  set->add_option("--default-hash", a.policy_set.default_hash, join("One of ", kHashes))
      ->type_name("HASH");
  set->add_option("--export", a.policy_set.export_rule,
                  "once (each generation may be exported once) or never")
      ->type_name("once|never");
  set->add_option("--max-lifetime", a.policy_set.max_lifetime,
                  "Longest lifetime any certificate may have from when it is made: 90d, or none")
      ->type_name("PERIOD");
  set->add_option("--renew-before", a.policy_set.renew_before,
                  "Entries without a rule of their own renew this long before they end: 30d")
      ->type_name("PERIOD");
  set->add_option("--renew-at", a.policy_set.renew_at,
                  "... or once this fraction of their lifetime has passed: 2/3")
      ->type_name("N/M");
  set->add_flag("--renew-off", a.policy_set.renew_off,
                "... or never renew by themselves (the default)");
  set->add_option("--min-pin-length", a.policy_set.min_pin_length,
                  "Shortest PIN passwd and unlock-reset accept: 1 to 64 (default 8)")
      ->type_name("N");
  command(*policy, "clear",
          "Back to the defaults: no date or lifetime limit, ec-p256, sha256, export once, no "
          "renewal, PINs of 8 characters or more",
          selected, [&a] { return cmd_policy_clear(a.globals); });
}

void add_ca_commands(CLI::App& app, Args& a, Action& selected) {
  auto* ca = app.add_subcommand("ca", "The vault's own certificate authority");
  ca->require_subcommand(1);
  auto* create = command(*ca, "create", "Create the vault's CA", selected,
                         [&a] { return cmd_ca_create(a.globals, a.ca_create); });
  create->add_option("--end-date", a.ca_create.end_date, join("CA end date: ", kDateHelp))
      ->type_name("DATE")
      ->required();
  create
      ->add_option("--subject", a.ca_create.subject,
                   "Distinguished name, '/CN=a/O=b' or 'CN=a,O=b' (default: CN=<label> CA)")
      ->type_name("DN");
  create->add_option("--key-type", a.ca_create.key_type, join("One of ", kKeyTypes))
      ->type_name("TYPE");
  create->add_flag("--replace", a.ca_create.replace, "Retire the current CA and create a new one");
  command(*ca, "show", "Print the CA certificate (PEM) and its details", selected,
          [&a] { return cmd_ca_show(a.globals); });
  auto* import = command(*ca, "import", "Use an existing CA certificate and key", selected,
                         [&a] { return cmd_ca_import(a.globals, a.ca_import); });
  import->add_option("CERT", a.ca_import.cert_file, "CA certificate, PEM")
      ->type_name("")
      ->required();
  import->add_option("KEY", a.ca_import.key_file, "CA private key, PEM")->type_name("")->required();
  auto* crl = command(*ca, "crl", "Write a CRL signed by the CA, listing its revoked certificates",
                      selected, [&a] { return cmd_ca_crl(a.globals, a.ca_crl); });
  crl->add_option("-o,--out", a.ca_crl.out,
                  "Write the CRL (PEM, mode 0644) to FILE, replacing it atomically (default: "
                  "stdout)")
      ->type_name("FILE");
  crl->add_option("--next-update", a.ca_crl.next_update,
                  "Servers may use the CRL this long; make a new one before then (default: 7d)")
      ->type_name("PERIOD");
}

constexpr const char* kSanHelp =
    "Subject alternative names: DNS:NAME, URI:URI, email:ADDRESS, IP:ADDRESS, comma-separated";

void add_issue_commands(CLI::App& app, Args& a, Action& selected) {
  auto* create = command(app, "create", "Make a key and a certificate for a new entry", selected,
                         [&a] { return cmd_create(a.globals, a.create); });
  add_nickname(create, a.create.nickname);
  create
      ->add_option("--end-date", a.create.end_date,
                   join("Certificate end date (optional with --issuer): ", kDateHelp))
      ->type_name("DATE");
  create->add_option("--key-type", a.create.key_type, join("One of ", kKeyTypes))
      ->type_name("TYPE");
  create->add_option("--hash", a.create.hash, join("Signature hash, one of ", kHashes))
      ->type_name("HASH");
  create->add_option("--subject", a.create.subject, "Distinguished name (default: CN=NICKNAME)")
      ->type_name("DN");
  create->add_option("--san", a.create.san, kSanHelp)->type_name("NAMES");
  create->add_flag("--self-signed", a.create.self_signed, "Sign with the entry's own key");
  create
      ->add_option("--issuer", a.create.issuer,
                   "Enroll at this outside issuer (CMP; see `certvault issuer list`)")
      ->type_name("NAME");

  auto* csr = command(app, "csr", "Make a key and a certificate request for an outside CA",
                      selected, [&a] { return cmd_csr(a.globals, a.csr); });
  add_nickname(csr, a.csr.nickname);
  csr->add_option("-o,--out", a.csr.out, "Write the request (PEM) to FILE ('-' = stdout)")
      ->type_name("FILE")
      ->required();
  csr->add_option("--subject", a.csr.subject,
                  "Distinguished name (default: the entry's certificate's, else CN=NICKNAME)")
      ->type_name("DN");
  csr->add_option("--san", a.csr.san,
                  std::string(kSanHelp) + " (default: the entry's certificate's, if any)")
      ->type_name("NAMES");
  csr->add_option("--key-type", a.csr.key_type, join("One of ", kKeyTypes))->type_name("TYPE");
  csr->add_option("--hash", a.csr.hash, join("Signature hash, one of ", kHashes))
      ->type_name("HASH");

  auto* attach = command(app, "attach", "Store the certificate the CA returned for a request",
                         selected, [&a] { return cmd_attach(a.globals, a.attach); });
  add_nickname(attach, a.attach.nickname);
  attach->add_option("CERT", a.attach.cert_file, "Certificate (and chain), PEM")
      ->type_name("")
      ->required();

  auto* import = command(app, "import", "Import a PKCS#12 (.p12/.pfx) or PEM certificate and key",
                         selected, [&a] { return cmd_import(a.globals, a.import); });
  import->add_option("FILE", a.import.file, "PKCS#12 (DER) or PEM file")->type_name("")->required();
  import->add_option("--nickname", a.import.nickname, "Name of the new entry")
      ->type_name("NICKNAME")
      ->required();
  import
      ->add_option("--password-file", a.import.password_file,
                   "Read the PKCS#12 password from FILE ('-' = stdin) instead of prompting")
      ->type_name("FILE");

  auto* rotate = command(app, "rotate", "Replace an entry's key and certificate; the URI stays",
                         selected, [&a] { return cmd_rotate(a.globals, a.rotate); });
  add_nickname(rotate, a.rotate.nickname);
  rotate
      ->add_option("--end-date", a.rotate.end_date,
                   join("New end date (default: same lifetime as before): ", kDateHelp))
      ->type_name("DATE");
}

void add_issuer_commands(CLI::App& app, Args& a, Action& selected) {
  auto* issuer = app.add_subcommand("issuer", "Outside CAs the vault enrolls from by CMP or ACME");
  issuer->require_subcommand(1);
  auto* add = command(*issuer, "add", "Add an outside CA reached by CMP or ACME", selected,
                      [&a] { return cmd_issuer_add(a.globals, a.issuer_add); });
  add->add_option("NAME", a.issuer_add.name, "The issuer's name in this vault")
      ->type_name("")
      ->required();
  add->add_option("--cmp", a.issuer_add.cmp_url, "The CA's CMP server: http://HOST:PORT/PATH")
      ->type_name("URL");
  add->add_option("--acme", a.issuer_add.acme_url,
                  "... or the CA's ACME directory: https://HOST:PORT/PATH (RFC 8555)")
      ->type_name("URL");
  add->add_option("--http01-listen", a.issuer_add.http01_listen,
                  "ACME: answer http-01 challenges on this ADDRESS:PORT while an order is pending")
      ->type_name("ADDR:PORT");
  add->add_option("--dns01-hook", a.issuer_add.dns01_hook,
                  "ACME: prove DNS names by dns-01 with this shell command, run as the vault's "
                  "owner with CERTVAULT_ACME_ACTION=present|cleanup, CERTVAULT_ACME_RECORD "
                  "(_acme-challenge.NAME.), CERTVAULT_ACME_TXT, CERTVAULT_ACME_DOMAIN")
      ->type_name("COMMAND");
  add->add_option("--eab", a.issuer_add.eab,
                  "ACME: external account binding: the key id and a file holding the MAC key "
                  "(base64url, as the CA gave it; '-' = stdin); stored sealed")
      ->type_name("KID:FILE");
  add->add_option("--cmp-ref", a.issuer_add.cmp_ref,
                  "Reference of the shared secret the CA gave for initial requests")
      ->type_name("REF");
  add->add_option("--cmp-secret-file", a.issuer_add.cmp_secret_file,
                  "Read that shared secret from FILE ('-' = stdin); stored sealed")
      ->type_name("FILE");
  add->add_option("--cmp-cert", a.issuer_add.cmp_cert,
                  "... or authenticate initial requests with this entry's certificate")
      ->type_name("NICKNAME");
  add->add_option("--trust", a.issuer_add.trust,
                  "The CA certificate(s), PEM, that issued certificates must chain to")
      ->type_name("FILE")
      ->required();
  add->add_option("--server-ca", a.issuer_add.server_ca,
                  "For an https server: the CA certificate(s), PEM, its TLS certificate chains to")
      ->type_name("FILE");
  command(*issuer, "list", "List the outside issuers", selected,
          [&a] { return cmd_issuer_list(a.globals); });
  auto* show = command(*issuer, "show", "Details of an outside issuer (never its secret)", selected,
                       [&a] { return cmd_issuer_show(a.globals, a.issuer_name); });
  show->add_option("NAME", a.issuer_name, "The issuer's name")->type_name("")->required();
  auto* remove = command(*issuer, "remove", "Remove an outside issuer no entry uses", selected,
                         [&a] { return cmd_issuer_remove(a.globals, a.issuer_name); });
  remove->add_option("NAME", a.issuer_name, "The issuer's name")->type_name("")->required();
}

void add_renewal_commands(CLI::App& app, Args& a, Action& selected) {
  auto* rule = command(app, "renew-rule",
                       "When an entry renews itself, and what runs after; without options, show it",
                       selected, [&a] { return cmd_renew_rule(a.globals, a.renew_rule); });
  add_nickname(rule, a.renew_rule.nickname);
  rule->add_option("--before", a.renew_rule.before,
                   "Renew this long before the certificate ends: 30d, 36h")
      ->type_name("PERIOD");
  rule->add_option("--at", a.renew_rule.at,
                   "Renew once this fraction of the lifetime has passed: 2/3")
      ->type_name("N/M");
  rule->add_flag("--off", a.renew_rule.off, "Never renew by itself, whatever the policy says");
  rule->add_flag("--policy", a.renew_rule.policy, "Follow the vault policy's rule (the default)");
  rule->add_option("--then", a.renew_rule.then,
                   "Run COMMAND (with /bin/sh) after each renewal, e.g. 'systemctl reload nginx'")
      ->type_name("COMMAND");
  rule->add_flag("--no-then", a.renew_rule.no_then, "Run nothing after a renewal");

  auto* renew =
      command(app, "renew",
              "Renew the entries that are due (by their rule, or sooner when their ACME CA's "
              "renewal information asks), or those named, now; the URIs stay",
              selected, [&a] { return cmd_renew(a.globals, a.renew); });
  renew->add_option("NICKNAME", a.renew.nicknames, "Renew these now, due or not")->type_name("");
  auto* publish = command(app, "publish",
                          "Files rewritten whenever an entry's certificate changes, for programs "
                          "that read a certificate file",
                          selected, [&a] { return cmd_publish(a.globals, a.publish); });
  add_nickname(publish, a.publish.nickname);
  publish->add_option("--cert", a.publish.cert, "The certificate, PEM")->type_name("FILE");
  publish->add_option("--chain", a.publish.chain, "The certificates above it, issuer first")
      ->type_name("FILE");
  publish->add_option("--fullchain", a.publish.fullchain, "The certificate, then its chain")
      ->type_name("FILE");
  publish
      ->add_option("--key-uri", a.publish.key_uri,
                   "A PEM key file holding the entry's URI, for the certvault provider")
      ->type_name("FILE");
  publish->add_option("--owner", a.publish.owner, "Give the files to USER (needs root)")
      ->type_name("USER");
  publish
      ->add_option("--mode", a.publish.mode,
                   "File mode, octal (default 0644; the key URI "
                   "file never readable by others)")
      ->type_name("MODE");
  publish->add_flag("--list", a.publish.list, "Show the entry's file targets (the default)");
  publish->add_flag("--remove", a.publish.remove,
                    "Forget the entry's file targets (the files stay)");
  renew->add_flag("--revoke-old", a.renew.revoke_old,
                  "Once renewed, revoke the generation it replaces: it stops working at once "
                  "and goes on the vault CA's next CRL, or is revoked at the entry's outside "
                  "issuer (ACME, CMP); a failed revocation leaves the renewal done");
  renew->add_flag("--dry-run", a.renew.dry_run,
                  "Say what would be renewed, when it is due and by whom; change nothing, ask "
                  "no PIN, ask no CA (so ACME renewal information is not consulted)");
}

void add_entry_commands(CLI::App& app, Args& a, Action& selected) {
  auto* exported = command(app, "export", "Write a PKCS#12 file with a generated password",
                           selected, [&a] { return cmd_export(a.globals, a.exported); });
  add_nickname(exported, a.exported.nickname);
  exported->add_option("-o,--out", a.exported.out, "PKCS#12 file to create (never overwritten)")
      ->type_name("FILE")
      ->required();
  exported
      ->add_option("--encryption", a.exported.encryption,
                   "aes-256 (default) or 3des (for old clients)")
      ->type_name("aes-256|3des");
  exported->add_flag("--chain", a.exported.chain, "Include the CA chain");

  add_nickname(command(app, "disable", "Stop programs from using an entry", selected,
                       [&a] { return cmd_disable(a.globals, a.nickname); }),
               a.nickname);
  add_nickname(command(app, "enable", "Let programs use a disabled entry again", selected,
                       [&a] { return cmd_enable(a.globals, a.nickname); }),
               a.nickname);
  auto* revoke = command(app, "revoke",
                         "Take back a certificate: it stops signing; the vault CA's next CRL "
                         "lists it, or its outside issuer (ACME, CMP) revokes it when asked",
                         selected, [&a] { return cmd_revoke(a.globals, a.revoke); });
  add_nickname(revoke, a.revoke.nickname);
  revoke
      ->add_option("--generation", a.revoke.generation,
                   "Revoke this generation (default: the current one)")
      ->type_name("N");
  revoke->add_option("--reason", a.revoke.reason, "Why, one of " + revocation_reason_names())
      ->type_name("REASON")
      ->required();
  auto* del = command(app, "delete", "Delete an entry and all its keys (asks first)", selected,
                      [&a] { return cmd_delete(a.globals, a.nickname, a.delete_yes); });
  add_nickname(del, a.nickname);
  del->add_flag("-y,--yes", a.delete_yes,
                "Do not ask; needed when stdin is not a terminal (scripts)");
}

void add_agent_commands(CLI::App& app, Args& a, Action& selected) {
  auto* agent =
      command(app, "agent", "Hold vaults unlocked and sign for programs, in the foreground",
              selected, [&a] { return cmd_agent(a.globals, a.agent); });
  agent->callback([&a, &selected] {
    a.long_running = true;
    selected = [&a] { return cmd_agent(a.globals, a.agent); };
  });
  agent
      ->add_option("--socket", a.agent.socket,
                   "Listen on PATH (default: $XDG_RUNTIME_DIR/certvault/agent.sock, or "
                   "/run/certvault/agent.sock with --system)")
      ->type_name("PATH");
  agent->add_flag("--system", a.agent.system,
                  "The system instance: socket 0660 for the certvault group, vault "
                  "/var/lib/certvault/default, no TTL");
  agent->add_option("--serve", a.agent.vaults, "Serve the vault in DIR too (repeatable)")
      ->type_name("DIR");
  agent
      ->add_option("--default", a.agent.default_vault,
                   "The vault a URI without vault= means (default: the first served)")
      ->type_name("DIR");
  agent
      ->add_option("--ttl", a.agent.ttl,
                   "Lock a vault this long after each unlock: 30m, 8h, 2d, or none "
                   "(default: 8h, none with --system)")
      ->type_name("DURATION");
  agent
      ->add_option("--audit-log", a.agent.audit_log,
                   "Record every signature and refusal in FILE (default: "
                   "$XDG_STATE_HOME/certvault/audit.log, /var/lib/certvault/audit.log with "
                   "--system)")
      ->type_name("FILE");
  agent
      ->add_option("--audit-log-max", a.agent.audit_max_bytes,
                   "Rotate the audit log to FILE.1 at this many bytes (default 16 MiB)")
      ->type_name("BYTES");
  agent
      ->add_option("--renew-every", a.agent.renew_every,
                   "Renew what is due in unlocked vaults this often, and after each unlock: "
                   "30m, 1h (default), or none")
      ->type_name("DURATION");
  agent
      ->add_option("--summary-every", a.agent.summary_every,
                   "Say in the journal how many signatures each key made, this often and when "
                   "the agent stops: 5m, 15m (default), 1h, or none (only when it stops)")
      ->type_name("DURATION");
  agent
      ->add_option("--max-connections", a.agent.max_connections,
                   "Take at most N connections in all (default 8192); users other than root "
                   "and the agent's own may hold all but a sixteenth of them together")
      ->type_name("N")
      ->check(CLI::Range(uint64_t{16}, uint64_t{1} << 20));
  agent
      ->add_option("--max-connections-per-user", a.agent.max_connections_per_user,
                   "Let one user other than root and the agent's own hold at most N "
                   "connections (default 1024)")
      ->type_name("N")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20));

  auto* unlock = command(app, "unlock", "Unlock a vault in the agent (asks for the PIN once)",
                         selected, [&a] { return cmd_unlock(a.globals, a.unlock); });
  unlock
      ->add_option("--ttl", a.unlock.ttl,
                   "Lock again after DURATION (30m, 8h, 2d, none; default: the agent's --ttl)")
      ->type_name("DURATION");
  auto* lock = command(app, "lock", "Lock a vault in the agent: its keys are wiped", selected,
                       [&a] { return cmd_lock(a.globals, a.lock); });
  lock->add_flag("--all", a.lock.all, "Lock every vault the agent serves");
  command(app, "status", "The agent's vaults: locked or not, TTL, clients, signatures", selected,
          [&a] { return cmd_status(a.globals); });
  auto* access = command(app, "access",
                         "Who may use an entry's key through the agent: show, allow, deny, "
                         "forget, reset, public, private",
                         selected, [&a] { return cmd_access(a.globals, a.access); });
  add_nickname(access, a.access.nickname);
  access
      ->add_option("ACTION", a.access.action,
                   "show | allow | deny | forget (drop the rule about a peer) | reset (drop "
                   "every rule) | public | private (who may list its certificate)")
      ->type_name("")
      ->required();
  access->add_option("--uid", a.access.uid, "A user, by name or number")->type_name("USER");
  access->add_option("--gid", a.access.gid, "Members of a group, by name or number")
      ->type_name("GROUP");
  access->add_option("--unit", a.access.unit, "A systemd unit (nginx.service)")->type_name("UNIT");
  access
      ->add_option("--exe", a.access.exe,
                   "A program, by absolute path (honoured only by an agent running as root)")
      ->type_name("PATH");
  auto* audit = command(app, "audit", "What the agent signed, and what it refused, for whom",
                        selected, [&a] { return cmd_audit(a.globals, a.audit); });
  audit->add_option("--since", a.audit.since, "From DATE (YYYY-MM-DD, UTC), or Nd: the last N days")
      ->type_name("DATE");
  audit->add_option("--nickname", a.audit.nickname, "Only this entry")->type_name("NICKNAME");
  audit->add_option("--audit-log", a.audit.file, "The agent's audit log (default: as the agent)")
      ->type_name("FILE");
  audit->add_flag("--system", a.audit.system, "The system instance's audit log");
}

void add_inspect_commands(CLI::App& app, Args& a, Action& selected) {
  auto* list = command(app, "list", "List the entries", selected,
                       [&a] { return cmd_list(a.globals, a.list); });
  list->add_option("--expiring", a.list.expiring_days,
                   "Only active certificates that expire within DAYS days")
      ->type_name("DAYS");
  list->add_option("--sort", a.list.sort,
                   "expiry (soonest first), name, or created (oldest first); default: the "
                   "vault's order")
      ->type_name("expiry|name|created");
  list->add_option("--status", a.list.status,
                   "Only entries that are active, expired, disabled, pending or superseded")
      ->type_name("STATUS");
  list->add_option("--issuer", a.list.issuer,
                   "Only entries issued by vault-ca, self-signed, external, or this outside "
                   "issuer (`certvault issuer list`)")
      ->type_name("NAME");
  list->add_flag("--names", a.list.names,
                 "Only the nicknames, one a line (with --json: an array); reads no secret");
  auto* show = command(app, "show", "Details of an entry and the URIs programs use", selected,
                       [&a] { return cmd_show(a.globals, a.show); });
  add_nickname(show, a.show.nickname);
  show->add_flag("--pem", a.show.pem, "Print the current certificate as PEM, nothing else");
  show->add_flag("--chain", a.show.chain,
                 "Print the certificates above it as PEM, issuer first (with --pem: after it)");
  auto* uri = command(app, "uri", "Print an entry's certvault: URI, or write it as a PEM key file",
                      selected, [&a] { return cmd_uri(a.globals, a.uri); });
  add_nickname(uri, a.uri.nickname);
  uri->add_flag("--pem", a.uri.pem,
                "A PEM block holding only the URI, which the certvault provider reads as the key");
  uri->add_option("-o,--out", a.uri.out, "Write to FILE (never overwritten; default: stdout)")
      ->type_name("FILE");
  auto* check =
      command(app, "check", "What needs attention; exit 1 if something is due soon, 2 if expired",
              selected, [&a] { return cmd_check(a.globals, a.check); });
  check->add_option("--within", a.check.within_days, "Days that count as soon (default 30)")
      ->type_name("DAYS");
  check
      ->add_option("--format", a.check.format,
                   "text (default), json (as --json) or prometheus (node_exporter textfile)")
      ->type_name("FORMAT");
  check
      ->add_option("-o,--output", a.check.out,
                   "Replace FILE atomically with the output (mode 0644; default: stdout)")
      ->type_name("FILE");
}

std::string footer() {
  return "DATE is " + std::string(kDateHelp) +
         ".\n"
         "Commands that change the vault ask for the PIN (or read --pin-file); list, show, uri,\n"
         "check, ca show, issuer list/show and policy show never do. Documentation: "
         "man certvault.\n\n" +
         std::string(exit_code_table());
}

// "Global options:" and the root's options (not --help or --version), for every command's
// --help: CLI11 shows a command's own options only.
std::string global_options_help(const CLI::App& app) {
  std::string text = "Global options (before or after the command):\n";
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_group().empty() || option == app.get_help_ptr() ||
        option == app.get_version_ptr())
      continue;
    std::string name = option->get_name();
    if (!option->get_type_name().empty()) name += " " + option->get_type_name();
    name.resize(std::max<size_t>(name.size() + 2, 28), ' ');
    text += "  " + name + option->get_description() + "\n";
  }
  return text;
}

void add_global_options_help(CLI::App& command, const std::string& text) {
  for (CLI::App* sub : command.get_subcommands([](CLI::App*) { return true; })) {
    sub->footer(text);
    add_global_options_help(*sub, text);
  }
}

// The command the user was typing ("certvault ca create"), for usage hints.
const CLI::App* typed_command(const CLI::App& app) {
  const CLI::App* current = &app;
  for (auto subs = current->get_subcommands(); !subs.empty(); subs = current->get_subcommands()) {
    current = subs.front();
  }
  return current;
}

std::string command_path(const CLI::App* command) {
  std::string path = command->get_name();
  for (const CLI::App* up = command->get_parent(); up != nullptr; up = up->get_parent()) {
    path = up->get_name() + " " + path;
  }
  return path;
}

// The long options a command takes, its own and the global ones.
std::vector<std::string> option_names(const CLI::App& app, const CLI::App* command) {
  std::vector<std::string> names;
  for (const CLI::App* c : {command, static_cast<const CLI::App*>(&app)}) {
    for (const CLI::Option* option : c->get_options()) {
      if (option->get_group().empty()) continue;
      for (const auto& name : option->get_lnames()) names.push_back("--" + name);
    }
  }
  return names;
}

// "unknown option '--expring' for 'certvault list'; did you mean '--expiring'?"
std::optional<std::string> misspelt_option(const CLI::App& app, const CLI::App* command,
                                           const std::string& path,
                                           const std::vector<std::string>& words) {
  auto known = option_names(app, command);
  for (const auto& word : words) {
    if (word == "--") break;
    if (!word.starts_with("--")) continue;
    std::string option = word.substr(0, word.find('='));
    if (std::find(known.begin(), known.end(), option) != known.end()) continue;
    std::string hint = did_you_mean(option, known);
    if (hint.empty()) hint = "see '" + path + " --help'";
    return "unknown option '" + option + "' for '" + path + "'; " + hint;
  }
  return std::nullopt;
}

// CLI11 says "A subcommand is required" both for a missing and for a misspelt command.
std::string usage_message(const CLI::App& app, const CLI::ParseError& error,
                          const std::vector<std::string>& words) {
  const CLI::App* command = typed_command(app);
  std::string path = command_path(command);
  std::string hint = "; see '" + path + " --help'";
  auto choices = command->get_subcommands([](const CLI::App*) { return true; });
  // (CLI11 names an ExtrasError after the command, so it is told by its exit code.)
  if (error.get_exit_code() == static_cast<int>(CLI::ExitCodes::ExtrasError)) {
    if (auto message = misspelt_option(app, command, path, words)) return *message;
  }
  if (error.get_name() != "RequiredError" || choices.empty()) return error.what() + hint;
  if (command == &app && app.remaining().empty()) return "no command given" + hint;
  for (const auto& word : app.remaining()) {
    if (word.starts_with("-")) continue;
    std::vector<std::string> names;
    for (const CLI::App* choice : choices) names.push_back(choice->get_name());
    std::string close = did_you_mean(word, names);
    return "unknown command '" + word + "'" + (close.empty() ? hint : "; " + close);
  }
  std::string names;
  for (const CLI::App* choice : choices) names += (names.empty() ? "" : ", ") + choice->get_name();
  return "'" + path + "' needs a command: " + names + hint;
}

// Every command and its options, one command a line: its path (empty for certvault itself),
// a tab, its options ("--out=" takes a value) and arguments ("<NICKNAME>"). For the shell
// completion scripts and the test that the man page names every command; hidden options
// stay hidden.
void print_commands(const CLI::App& command, const std::string& path) {
  std::string line = path + "\t";
  std::string options;
  for (const CLI::Option* option : command.get_options()) {
    if (option->get_group().empty()) continue;
    if (!option->nonpositional()) {
      options += " <" + option->get_name() + ">";
      continue;
    }
    std::string value = option->get_expected_min() > 0 ? "=" : "";
    for (const auto& name : option->get_snames()) options += " -" + name + value;
    for (const auto& name : option->get_lnames()) options += " --" + name + value;
  }
  std::cout << line << (options.empty() ? options : options.substr(1)) << '\n';
  for (const CLI::App* sub : command.get_subcommands([](const CLI::App*) { return true; })) {
    print_commands(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name());
  }
}

int run(int argc, char** argv) {
  Args a;
  Action selected;
  CLI::App app("Client-authentication certificates and their keys, in an encrypted vault.",
               "certvault");
  app.require_subcommand(1);
  app.fallthrough();  // global options also after the command name
  app.footer(footer());
  app.set_version_flag("--version", version_line());
  app.add_option("--vault", a.globals.vault,
                 "Vault directory (default: $CERTVAULT_VAULT, else "
                 "$XDG_DATA_HOME/certvault/default)")
      ->type_name("DIR");
  app.add_option("--pin-file", a.globals.pin_file,
                 "Read the PIN from FILE ('-' = stdin) instead of prompting")
      ->type_name("FILE");
  app.add_flag("--json", a.globals.json, "Print data as JSON");
  app.add_flag_callback("--list-commands",
                        [&app] {
                          print_commands(app, "");
                          throw CLI::Success();
                        })
      ->group("");
  add_vault_commands(app, a, selected);
  add_ca_commands(app, a, selected);
  add_issue_commands(app, a, selected);
  add_issuer_commands(app, a, selected);
  add_renewal_commands(app, a, selected);
  add_entry_commands(app, a, selected);
  add_inspect_commands(app, a, selected);
  add_policy_commands(app, a, selected);
  add_agent_commands(app, a, selected);
  add_global_options_help(app, global_options_help(app));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return report_failure(usage_message(app, e, std::vector<std::string>(argv + 1, argv + argc)),
                          kExitUsage);
  }
  if (!selected) return report_failure("no command given; see 'certvault --help'", kExitUsage);
  init_secure_heap(a.long_running);
  Outcome outcome = selected();
  if (!outcome)
    return report_failure(with_advice(outcome.error()), exit_code(outcome.error().code));
  if (!stdout_ok()) return report_failure("cannot write the output to stdout", kExitInternal);
  return *outcome;
}

}  // namespace
}  // namespace certvault::cli

int main(int argc, char** argv) {
  using namespace certvault::cli;
  harden_process();
  try {
    if (!certvault::sodium_ready()) {
      return report_failure("libsodium failed to initialise; check the installation",
                            kExitInternal);
    }
    return run(argc, argv);
  } catch (const std::exception& e) {
    return report_failure(std::string("internal error: ") + e.what(), kExitInternal);
  } catch (...) {
    return report_failure("internal error", kExitInternal);
  }
}

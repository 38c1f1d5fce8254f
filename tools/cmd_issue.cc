// create, csr, attach, import, rotate: commands that give an entry a new key or certificate.
#include <iostream>

#include "commands.h"
#include "files.h"
#include "output.h"
#include "owner.h"
#include "owner_request.h"
#include "publish.h"
#include "report.h"
#include "secret_input.h"

namespace certvault::cli {
namespace {

bool looks_like_pem(std::string_view text) {
  size_t start = text.find_first_not_of(" \t\r\n");
  return start != std::string_view::npos && text.substr(start).starts_with("-----BEGIN");
}

std::string generation_headline(std::string_view verb, const Entry& entry) {
  const Generation* g = shown_generation(entry);
  return std::string(verb) + " '" + entry.nickname + "'" +
         (g != nullptr ? " (generation " + std::to_string(g->number) + ")." : ".");
}

}  // namespace

Outcome cmd_create(const Globals& globals, const CreateArgs& args) {
  if (!args.issuer.empty()) return cmd_create_from_issuer(globals, args);
  if (args.end_date.empty())
    return invalid("create needs --end-date DATE (or --issuer NAME, whose CA may decide)");
  IssueRequest request;
  request.nickname = args.nickname;
  CV_TRY(not_after, parse_date(args.end_date));
  CV_TRY(key_type, parse_optional_key_type(args.key_type));
  CV_TRY(hash, parse_optional_hash(args.hash));
  request.not_after = not_after;
  request.key_type = key_type;
  request.hash = hash;
  request.subject = args.subject;
  request.alt_names = args.san;
  request.self_signed = args.self_signed;
  CV_CHECK(check_nickname(request.nickname));
  CV_TRY(vault, open_vault(globals));
  CV_TRY(entry, change_entry_via_agent_or_here(globals, vault, {"create", owner::to_json(request)},
                                               [&](Vault& v) { return v.create(request); }));
  report_entry(globals, vault, entry, generation_headline("Created", entry));
  return kExitOk;
}

Outcome cmd_csr(const Globals& globals, const CsrArgs& args) {
  CsrRequest request;
  request.nickname = args.nickname;
  request.subject = args.subject;
  request.alt_names = args.san;
  CV_TRY(key_type, parse_optional_key_type(args.key_type));
  CV_TRY(hash, parse_optional_hash(args.hash));
  request.key_type = key_type;
  request.hash = hash;
  CV_CHECK(check_nickname(request.nickname));
  CV_TRY(vault, open_vault(globals));
  CV_TRY(out_file, ReservedFile::create(args.out, "request file"));
  CV_TRY(reply, ask_agent(globals, vault, {"csr", owner::to_json(request)}));
  std::string pem;
  if (reply) {
    pem = reply->message.text(agent::Tag::kData);
  } else {
    CV_CHECK(unlock_here(globals, vault));
    CV_TRY(made, vault.make_csr(request));
    pem = std::move(made);
  }
  bool to_stdout = args.out == "-";
  if (!(globals.json && to_stdout)) CV_CHECK(out_file.write(pem));  // JSON carries it then
  if (globals.json) {
    Json::Value out(Json::objectValue);
    out["nickname"] = args.nickname;
    out["pem"] = pem;
    if (!to_stdout) out["file"] = args.out;
    print_json(out);
    return kExitOk;
  }
  if (!to_stdout) {
    std::cout << "Wrote the certificate request for '" << args.nickname << "' to " << args.out
              << ".\nSend it to your CA, then store the signed certificate with:\n"
              << "  certvault attach " << args.nickname << " CERT.pem\n";
  }
  return kExitOk;
}

Outcome cmd_attach(const Globals& globals, const AttachArgs& args) {
  CV_TRY(cert_pem, read_text_file(args.cert_file, "certificate file"));
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(must_exist(vault, args.nickname));
  OwnerRequest request{"attach", owner::nickname_json(args.nickname)};
  request.data = {reinterpret_cast<const uint8_t*>(cert_pem.data()), cert_pem.size()};
  bool here = false;
  CV_TRY(entry, change_entry_via_agent_or_here(globals, vault, request, [&](Vault& v) {
           here = true;
           return v.attach(args.nickname, cert_pem);
         }));
  report_entry(globals, vault, entry, generation_headline("Attached the certificate to", entry));
  follow_up(vault, entry, here);
  return kExitOk;
}

Outcome cmd_import(const Globals& globals, const ImportArgs& args) {
  CV_CHECK(check_stdin_once("--pin-file", globals.pin_file, "--password-file", args.password_file));
  CV_CHECK(check_nickname(args.nickname));
  CV_TRY(content, read_file_secure(args.file, "import file", kMaxMaterialFile));
  bool pem = looks_like_pem(content.view());
  CV_TRY(vault, open_vault(globals));
  // The PKCS#12 password before the PIN: the agent needs it, and may spare the PIN.
  SecureBytes password;
  if (!pem) {
    CV_TRY(given, read_secret(args.password_file, "Password of " + args.file + ": ",
                              {"PKCS#12 password", "--password-file"}));
    password = std::move(given);
  }
  OwnerRequest request{"import", owner::nickname_json(args.nickname)};
  request.args["pkcs12"] = !pem;
  request.data = content.span();
  if (!pem) request.password = &password;
  CV_TRY(imported, change_entry_via_agent_or_here(globals, vault, request, [&](Vault& v) {
           return pem ? v.import_pem(args.nickname, content.view())
                      : v.import_pkcs12(args.nickname, content.span(), password);
         }));
  report_entry(globals, vault, imported, generation_headline("Imported", imported));
  return kExitOk;
}

Outcome cmd_rotate(const Globals& globals, const RotateArgs& args) {
  CV_TRY(not_after, parse_optional_date(args.end_date));
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(must_exist(vault, args.nickname));
  bool here = false;
  CV_TRY(entry, change_entry_via_agent_or_here(
                    globals, vault, {"rotate", owner::rotate_json(args.nickname, not_after)},
                    [&](Vault& v) {
                      here = true;
                      return v.rotate(args.nickname, not_after);
                    }));
  report_entry(globals, vault, entry,
               generation_headline("Rotated", entry) +
                   " Programs using its URI get the new "
                   "key and certificate.");
  follow_up(vault, entry, here);
  return kExitOk;
}

}  // namespace certvault::cli

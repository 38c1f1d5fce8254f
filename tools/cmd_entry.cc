// export, disable, enable, revoke, delete: what happens to an existing entry.
#include <iostream>

#include "commands.h"
#include "confirm.h"
#include "files.h"
#include "output.h"
#include "owner.h"
#include "owner_request.h"
#include "report.h"
#include "revoke.h"

namespace certvault::cli {
namespace {

void print_export(const Globals& globals, const ExportArgs& args, const SecureBytes& password) {
  if (globals.json) {
    Json::Value fields(Json::objectValue);
    fields["file"] = args.out;
    fields["nickname"] = args.nickname;
    fields["encryption"] = args.encryption;
    fields["chain"] = args.chain;
    return print_json_with_secret(fields, "password", password);
  }
  std::cout << "Wrote '" << args.nickname << "' to " << args.out << " (" << args.encryption
            << (args.chain ? ", with the CA chain" : "") << ").\n"
            << "PKCS#12 password (shown once): ";
  write_secret(password);
  std::cout << '\n';
}

using Change = Result<Entry> (Vault::*)(std::string_view);

Outcome change_entry(const Globals& globals, const std::string& nickname, std::string_view op,
                     Change change, std::string_view verb) {
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(must_exist(vault, nickname));
  CV_TRY(entry, change_entry_via_agent_or_here(globals, vault,
                                               {std::string(op), owner::nickname_json(nickname)},
                                               [&](Vault& v) { return (v.*change)(nickname); }));
  report_entry(globals, vault, entry, std::string(verb) + " '" + entry.nickname + "'.");
  return kExitOk;
}

}  // namespace

Outcome cmd_export(const Globals& globals, const ExportArgs& args) {
  ExportRequest request;
  request.nickname = args.nickname;
  request.out = args.out;
  CV_TRY(encryption, parse_p12_encryption(args.encryption));
  request.encryption = encryption;
  request.chain = args.chain;
  if (args.out != "-") CV_CHECK(check_absent(args.out, "export file"));
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(must_exist(vault, args.nickname));
  if (may_ask_agent(globals) && args.out != "-") {
    // The file is the caller's: created here (0600, never over an existing one) with room
    // for any answer the agent can give, before the agent records the export; removed again
    // unless the agent's bytes reach it. So a path that cannot be written, an existing file
    // or a full disk leave the export unspent, as they do in-process.
    CV_TRY(out_file, ReservedFile::create(args.out, "export file", 0600));
    CV_CHECK(out_file.reserve(agent::kMaxBody));
    CV_TRY(reply, ask_agent(globals, vault, {"export", owner::to_json(request)}));
    if (reply) {
      const auto password = reply->message.get(agent::Tag::kPassword);
      if (!password)
        return fail(Code::kIo, "the agent exported '" + args.nickname + "' without a password");
      if (auto wrote = out_file.write(reply->message.get(agent::Tag::kData).value_or("")); !wrote)
        return fail(wrote.error().code,
                    wrote.error().message + "; the export was recorded, so rotate to export again");
      print_export(globals, args, SecureBytes(password->data(), password->size()));
      return kExitOk;
    }
  }
  CV_CHECK(unlock_here(globals, vault));
  CV_TRY(password, vault.export_pkcs12(request));
  print_export(globals, args, password);
  return kExitOk;
}

Outcome cmd_disable(const Globals& globals, const std::string& nickname) {
  return change_entry(globals, nickname, "disable", &Vault::disable, "Disabled");
}

Outcome cmd_enable(const Globals& globals, const std::string& nickname) {
  return change_entry(globals, nickname, "enable", &Vault::enable, "Enabled");
}

Outcome cmd_revoke(const Globals& globals, const RevokeArgs& args) {
  owner::RevokeRequest request;
  request.nickname = args.nickname;
  request.generation = args.generation;
  CV_TRY(reason, parse_revocation_reason(args.reason));
  request.reason = reason;
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(must_exist(vault, request.nickname));
  CV_TRY(entry, change_entry_via_agent_or_here(
                    globals, vault, {"revoke", owner::to_json(request)}, [&](Vault& v) {
                      return revoke_generation(v, request.nickname, request.generation,
                                               request.reason);
                    }));
  if (entry.revoked.empty())  // another process changed the entry meanwhile
    return fail(Code::kNotFound, "'" + entry.nickname +
                                     "' shows no revocation; check it with "
                                     "`certvault show`");
  const Revocation& r = entry.revoked.back();  // the newest: the one just made
  const std::string issuer = revoking_issuer(entry, r.generation);
  report_entry(globals, vault, entry,
               "Revoked generation " + std::to_string(r.generation) + " of '" + entry.nickname +
                   "'" + (issuer.empty() ? "" : " at issuer '" + issuer + "'") + " (serial " +
                   r.serial + ", " + std::string(to_string(r.reason)) + "); it no longer signs. " +
                   (issuer.empty() ? "Servers learn of it from the next CRL: run "
                                     "`certvault ca crl -o FILE`."
                                   : "Servers learn of it from that CA (its CRL or OCSP); the "
                                     "vault CA's CRL does not list it."));
  return kExitOk;
}

Outcome cmd_delete(const Globals& globals, const std::string& nickname, bool yes) {
  CV_TRY(vault, open_vault(globals));
  CV_CHECK(must_exist(vault, nickname));
  if (!yes) {
    CV_TRY(go,
           confirm("Delete '" + nickname + "' and all its keys from vault '" + vault.label() + "'?",
                   "delete '" + nickname + "'"));
    if (!go)
      return fail(Code::kRefused, "'" + nickname + "' was not deleted: the answer was not yes");
  }
  CV_TRY(reply, ask_agent(globals, vault, {"delete", owner::nickname_json(nickname)}));
  if (!reply) {
    CV_CHECK(unlock_here(globals, vault));
    CV_CHECK(vault.remove(nickname));
  }
  report_done(globals, nickname, "deleted",
              "Deleted '" + nickname + "' and all its keys from vault '" + vault.label() + "'.");
  return kExitOk;
}

}  // namespace certvault::cli

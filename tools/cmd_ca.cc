// ca create | show | import | crl
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "files.h"
#include "output.h"
#include "owner.h"
#include "owner_request.h"
#include "renewal.h"
#include "report.h"

namespace certvault::cli {
namespace {

Result<CaInfo> active_ca(const Vault& vault) {
  auto ca = vault.active_ca();
  if (!ca) {
    return fail(Code::kNotFound, "vault '" + vault.label() +
                                     "' has no CA; create one with 'certvault ca create "
                                     "--end-date DATE' or import one with 'certvault ca import'");
  }
  return *ca;
}

}  // namespace

Outcome cmd_ca_create(const Globals& globals, const CaCreateArgs& args) {
  CaRequest request;
  CV_TRY(not_after, parse_date(args.end_date));
  CV_TRY(key_type, parse_optional_key_type(args.key_type));
  request.not_after = not_after;
  request.key_type = key_type;
  request.subject = args.subject;
  request.replace = args.replace;
  CV_TRY(vault, open_vault(globals));
  CV_TRY(reply, ask_agent(globals, vault, {"ca-create", owner::to_json(request)}));
  CaInfo ca;
  if (reply) {
    CV_CHECK(vault.refresh());
    CV_TRY(active, active_ca(vault));
    ca = std::move(active);
  } else {
    CV_CHECK(unlock_here(globals, vault));
    CV_TRY(made, vault.create_ca(request));
    ca = std::move(made);
  }
  report_ca(globals, ca, "Created the CA of vault '" + vault.label() + "'.");
  return kExitOk;
}

Outcome cmd_ca_show(const Globals& globals) {
  CV_TRY(vault, open_vault(globals));
  CV_TRY(ca, active_ca(vault));
  CV_TRY(der, vault.ca_certificate_der());
  std::string pem = der_to_pem(der, "CERTIFICATE");
  Time t = now();
  if (globals.json) {
    Json::Value out = ca_json(ca, t);
    out["pem"] = pem;
    Json::Value retired(Json::arrayValue);
    for (const auto& other : vault.cas()) {
      if (!other.active) retired.append(ca_json(other, t));
    }
    out["retired"] = retired;
    print_json(out);
    return kExitOk;
  }
  std::cout << pem << '\n';
  print_ca(ca, t);
  for (const auto& other : vault.cas()) {
    if (other.active) continue;
    std::cout << "\nRetired CA:\n";
    print_ca(other, t);
  }
  return kExitOk;
}

Outcome cmd_ca_import(const Globals& globals, const CaImportArgs& args) {
  CV_TRY(cert_pem, read_text_file(args.cert_file, "CA certificate file"));
  CV_TRY(key_pem, read_file_secure(args.key_file, "CA key file", kMaxMaterialFile));
  CV_TRY(vault, open_unlocked(globals));
  CV_TRY(ca, vault.import_ca(cert_pem, key_pem.view()));
  report_ca(globals, ca, "Imported the CA of vault '" + vault.label() + "'.");
  return kExitOk;
}

Outcome cmd_ca_crl(const Globals& globals, const CaCrlArgs& args) {
  CV_TRY(period, parse_period(args.next_update, "--next-update"));
  const bool to_stdout = args.out == "-";
  owner::CrlRequest request;
  request.next_update = now() + period;
  if (!to_stdout) request.file = std::filesystem::absolute(args.out).lexically_normal().string();
  CV_TRY(vault, open_vault(globals));
  // Before the CRL number is spent: a directory that cannot be written fails here.
  CV_TRY(out_file, ReplacedFile::create(args.out, "CRL file"));
  CV_TRY(reply, ask_agent(globals, vault, {"ca-crl", owner::to_json(request)}));
  std::string pem;
  if (reply) {
    pem = reply->message.text(agent::Tag::kData);
  } else {
    CV_CHECK(unlock_here(globals, vault));
    CV_TRY(made, vault.make_crl(request.next_update, request.file));
    pem = std::move(made);
  }
  if (!(globals.json && to_stdout)) CV_CHECK(out_file.write(pem));  // JSON carries it then
  CV_CHECK(vault.refresh());
  const auto state = vault.crl_state().value_or(CrlState{});
  if (globals.json) {
    Json::Value out(Json::objectValue);
    out["number"] = Json::UInt64(state.number);
    out["last_update"] = format_time(state.last_issued);
    out["next_update"] = format_time(state.next_update);
    if (to_stdout)
      out["pem"] = pem;
    else
      out["file"] = request.file;
    print_json(out);
    return kExitOk;
  }
  if (!to_stdout)
    std::cout << "Wrote CRL number " << state.number << " of vault '" << vault.label() << "' to "
              << request.file << "; make a new one before " << format_time(state.next_update)
              << ".\n";
  return kExitOk;
}

}  // namespace certvault::cli

#include "pin_state.h"

#include <charconv>
#include <string>

#include "raw_io.h"
#include "seal.h"

namespace certvault::pin_state {
namespace {

std::string body(int failures) {
  return "certvault-pin-state 1\nfailures " + std::to_string(failures) + "\n";
}

std::string checksum(std::string_view vault_id, std::string_view text) {
  std::string bound(vault_id);
  bound += '\0';
  bound += text;
  return seal::to_hex(seal::content_hash(seal::as_bytes(bound)));
}

}  // namespace

Result<int> read(const std::filesystem::path& file, std::string_view vault_id) {
  auto damaged = [&] {
    return fail(Code::kTampered, "wrong-PIN counter " + file.string() + " is damaged",
                Remedy::kRewriteCounter);
  };
  auto bytes = raw::read_file(file);
  if (!bytes) return damaged();
  std::string_view text(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  size_t check = text.find("check ");
  if (check == std::string_view::npos) return damaged();
  std::string_view head = text.substr(0, check);
  if (text.substr(check) != "check " + checksum(vault_id, head) + "\n") return damaged();
  constexpr std::string_view kPrefix = "certvault-pin-state 1\nfailures ";
  if (!head.starts_with(kPrefix)) return damaged();
  head.remove_prefix(kPrefix.size());
  int failures = -1;
  auto [p, ec] = std::from_chars(head.data(), head.data() + head.size(), failures);
  if (ec != std::errc() || std::string_view(p, head.data() + head.size()) != "\n" || failures < 0)
    return damaged();
  return failures;
}

Result<void> write(const std::filesystem::path& file, std::string_view vault_id, int failures) {
  std::string text = body(failures);
  text += "check " + checksum(vault_id, text) + "\n";
  return raw::write_atomic(file, seal::as_bytes(text));
}

}  // namespace certvault::pin_state

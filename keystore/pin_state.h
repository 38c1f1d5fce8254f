// The wrong-PIN counter. It must change without the vault key, so it cannot carry the
// vault's MAC; a checksum bound to the vault id catches damage, and the counter only
// limits guessing through certvault itself (offline guessing faces Argon2id).
#pragma once

#include <filesystem>
#include <string_view>

#include "error.h"

namespace certvault::pin_state {

Result<int> read(const std::filesystem::path& file, std::string_view vault_id);
Result<void> write(const std::filesystem::path& file, std::string_view vault_id, int failures);

}  // namespace certvault::pin_state

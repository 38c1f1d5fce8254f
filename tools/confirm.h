// Asking the person at the terminal before something that cannot be undone.
#pragma once

#include <string_view>

#include "error.h"

namespace certvault::cli {

// Asks `question` followed by " [y/N] " when stdin is a terminal: true for y or yes. With no
// terminal on stdin nobody can answer: "will not ACTION without asking, ...; add --yes".
Result<bool> confirm(std::string_view question, std::string_view action);

}  // namespace certvault::cli

#include "confirm.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <string>

namespace certvault::cli {

Result<bool> confirm(std::string_view question, std::string_view action) {
  if (!::isatty(STDIN_FILENO)) {
    return fail(Code::kInvalidInput, "will not " + std::string(action) +
                                         " without asking, and stdin is not a terminal to ask "
                                         "on; add --yes");
  }
  std::cout.flush();
  std::cerr << question << " [y/N] " << std::flush;
  std::string answer;
  if (!std::getline(std::cin, answer)) answer.clear();
  std::transform(answer.begin(), answer.end(), answer.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return answer == "y" || answer == "yes";
}

}  // namespace certvault::cli

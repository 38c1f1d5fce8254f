// The opt-in debug log that the provider and the PKCS#11 module share: CERTVAULT_DEBUG=1
// writes to standard error, CERTVAULT_DEBUG=/path appends to a file (created 0600, never
// through a symbolic link). Off, it costs one branch per call site. Lines never hold a
// secret: they carry keystore messages, names and paths.
#pragma once

namespace certvault::debug {

// Whether CERTVAULT_DEBUG asks for a log. Read once, with secure_getenv(), so a setuid or
// setgid program that loads certvault never logs.
bool enabled();
// One line, "COMPONENT: " and the printf-style message.
void log(const char* component, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace certvault::debug

// What each part logs through, with its own component name.
#define CV_DEBUG_AS(component, ...)                                                     \
  do {                                                                                  \
    if (::certvault::debug::enabled()) ::certvault::debug::log(component, __VA_ARGS__); \
  } while (0)

# Removes the files an install wrote, as listed in install_manifest.txt (cmake -P; the
# `uninstall` target runs it). Directories are left: others may share them.
if(NOT EXISTS "${MANIFEST}")
  message(FATAL_ERROR "uninstall: ${MANIFEST} does not exist; run `cmake --install` from "
                      "this build directory first, or remove the files by hand")
endif()
file(STRINGS "${MANIFEST}" files)
foreach(file IN LISTS files)
  if(IS_SYMLINK "${file}" OR EXISTS "${file}")
    message(STATUS "Removing ${file}")
    file(REMOVE "${file}")
  endif()
endforeach()

# Where every installed file goes: one cache variable per directory, relative to
# CMAKE_INSTALL_PREFIX by default (GNUInstallDirs style), so that
# `cmake --install build --prefix DIR` writes only under DIR. A packager installing into the
# system sets CERTVAULT_SYSTEM_PATHS=ON (with CMAKE_INSTALL_PREFIX=/usr): the defaults then
# come from the pkg-config files of OpenSSL, p11-kit and systemd, where those programs look.
# Any of them can still be set on its own with -D.
option(CERTVAULT_SYSTEM_PATHS
       "Default the module, provider and systemd directories to the system's (pkg-config)" OFF)

# certvault_install_dir(VAR DEFAULT PKG VARIABLE DOC): VAR's default is DEFAULT (relative to
# the prefix), or with CERTVAULT_SYSTEM_PATHS the pkg-config variable VARIABLE of PKG.
function(certvault_install_dir var default pkg pcvar doc)
  if(CERTVAULT_SYSTEM_PATHS)
    pkg_get_variable(system_value ${pkg} ${pcvar})
    if(NOT system_value)
      message(FATAL_ERROR "CERTVAULT_SYSTEM_PATHS: pkg-config has no ${pcvar} for ${pkg}; "
                          "install its -dev package or set ${var} with -D")
    endif()
    set(default "${system_value}")
  endif()
  # STRING, not PATH: cmake would make a relative -D value absolute against the current
  # directory.
  set(${var} "${default}" CACHE STRING "${doc}")
  # The absolute path, for what names an installed file (the p11-kit .module file, the units).
  if(IS_ABSOLUTE "${${var}}")
    set(${var}_FULL "${${var}}" PARENT_SCOPE)
  else()
    set(${var}_FULL "${CMAKE_INSTALL_PREFIX}/${${var}}" PARENT_SCOPE)
  endif()
endfunction()

certvault_install_dir(CERTVAULT_OPENSSL_MODULES_DIR "${CMAKE_INSTALL_LIBDIR}/ossl-modules"
                      libcrypto modulesdir "Where the OpenSSL provider certvault.so goes")
certvault_install_dir(CERTVAULT_PKCS11_MODULE_DIR "${CMAKE_INSTALL_LIBDIR}/pkcs11"
                      p11-kit-1 p11_module_path "Where the PKCS#11 module goes")
certvault_install_dir(CERTVAULT_P11KIT_MODULE_CONFIG_DIR "${CMAKE_INSTALL_DATADIR}/p11-kit/modules"
                      p11-kit-1 p11_module_configs "Where p11-kit's certvault.module goes")
certvault_install_dir(CERTVAULT_SYSTEMD_SYSTEM_UNIT_DIR "lib/systemd/system"
                      systemd systemdsystemunitdir "Where the agent's system units go")
certvault_install_dir(CERTVAULT_SYSTEMD_USER_UNIT_DIR "lib/systemd/user"
                      systemd systemduserunitdir "Where the agent's user units go")
certvault_install_dir(CERTVAULT_SYSUSERS_DIR "lib/sysusers.d" systemd sysusersdir
                      "Where the sysusers.d file for the certvault user goes")
certvault_install_dir(CERTVAULT_TMPFILES_DIR "lib/tmpfiles.d" systemd tmpfilesdir
                      "Where the tmpfiles.d file for /var/lib/certvault goes")

# p11-kit finds a module named by file name in its own module directory; a module installed
# anywhere else is named by its absolute path.
pkg_get_variable(certvault_p11kit_module_path p11-kit-1 p11_module_path)
if(CERTVAULT_PKCS11_MODULE_DIR_FULL STREQUAL certvault_p11kit_module_path)
  set(CERTVAULT_P11KIT_MODULE_NAME "libcertvault-pkcs11.so")
else()
  set(CERTVAULT_P11KIT_MODULE_NAME "${CERTVAULT_PKCS11_MODULE_DIR_FULL}/libcertvault-pkcs11.so")
endif()

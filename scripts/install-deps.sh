#!/usr/bin/env bash
# Installs the Debian 12 packages certvault needs to build, test and benchmark; with
# arguments, those packages instead (scripts/fuzz.sh asks for its compiler this way).
set -euo pipefail
packages=(
  build-essential cmake pkg-config clang-format
  pandoc                        # the man pages, made from docs/ (the build skips them without it)
  man-db                        # man renders the pages in the tests
  zsh                           # the zsh completion function runs in the tests
  libssl-dev openssl            # libcrypto: keys, X.509, PKCS#12; the openssl CLI in tests
  libsodium-dev                 # Argon2id, XChaCha20-Poly1305, randomness, guarded memory
  libjsoncpp-dev                # vault metadata
  libcli11-dev                  # command-line parsing
  libp11-kit-dev                # pkcs11.h for the PKCS#11 module
  libsystemd-dev                # the agent: socket activation, readiness, peer unit, journal
  acl                           # setfacl: a systemd credential as systemd leaves it (ACL) in tests
  libasio-dev                   # the agent's event loop (standalone Asio, header-only)
  libcurl4-openssl-dev          # the ACME client's HTTP (certvault only)
  opensc                        # pkcs11-tool drives the module in tests
  gnutls-bin                    # p11tool and gnutls-cli use the module in tests (mutual TLS)
  curl libengine-pkcs11-openssl # curl presents a pkcs11: URI through libp11's OpenSSL engine
  p11-kit-modules               # p11-kit-proxy.so, the module libp11 loads by default
  softhsm2                      # the reference token for differential tests and benchmarks
  pebble                        # a small ACME server: the ACME tests enroll and renew at it
  gdb                           # gcore: the agent memory test searches a core of the agent
  openssh-client                # ssh-keygen -D, ssh-agent and ssh-add -s use the module in tests
  openssh-server                # a throwaway sshd on loopback: ssh logs in with a vault key
  libnss3-tools                 # modutil, certutil and tstclnt use the module in tests
  nginx                         # ssl_certificate_key and proxy_ssl_certificate_key as URI-in-PEM in tests
  python3                       # Python's ssl loads a URI-in-PEM key through the provider in tests
  openvpn                       # --pkcs11-id through the module, a URI-in-PEM --key, in tests
  wget git                      # GnuTLS clients (git over libcurl-gnutls) given pkcs11: URIs in tests
  systemd                       # systemd-socket-activate and systemd-analyze in the agent tests
  prometheus                    # promtool check metrics: the check tests lint its Prometheus output
  faketime                      # libfaketime: a renewal story on a faked clock, certvault and openssl alike
  socat                         # a TLS front for the CMP test server (CMP over https)
  libgtest-dev libgmock-dev     # unit and integration tests
  libbenchmark-dev              # bench/
)
(($#)) && packages=("$@")
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

#!/usr/bin/env bash
# Writes the seed corpora of fuzz/corpus/ that are not the agent protocol's (fuzz/README.md,
# "Corpus"): a few valid inputs per target, made with openssl(1) and the certvault CLI
# ($CERTVAULT_CLI, default build/tools/certvault). Every key, PIN and password here is a
# throwaway made for the corpus, no secret. Run it again after a change to what a target
# reads; inputs that found bugs (crash-*, leak-*, timeout-*) are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
cli=${CERTVAULT_CLI:-build/tools/certvault}
out=fuzz/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for d in certvault_uri pkcs11_uri dates manifest import uri_pem pkcs11_templates; do
  mkdir -p "$out/$d"
  find "$out/$d" -type f ! -name 'crash-*' ! -name 'leak-*' ! -name 'timeout-*' -delete
done

# --- certvault: URIs, PKCS#11 URIs, dates: text ---------------------------------------
put() { printf '%s' "$2" >"$out/$1"; }
put certvault_uri/nickname 'certvault:api-prod'
put certvault_uri/query 'certvault:api%20prod?vault=/home/u/.local/share/certvault/default&serial=0x01:AB'
put certvault_uri/pin_source 'certvault:?pin-source=file:/run/certvault/pin'
put certvault_uri/pin_value 'CERTVAULT:x?pin-value=12%2534'
put certvault_uri/unknown 'certvault:a?colour=blue'
put pkcs11_uri/show 'pkcs11:token=fuzz;object=fuzz-ec;type=private'
put pkcs11_uri/id 'pkcs11:token=my%20vault;object=a;id=%01%02%ff?pin-source=/run/pin'
put pkcs11_uri/elsewhere 'pkcs11:model=certvault;manufacturer=certvault;serial=1;slot-id=0;library-version=1.0?module-name=certvault-pkcs11&pin-value=1234'
put pkcs11_uri/file_pin 'pkcs11:object=a;type=cert?pin-source=file:/run/pin&x-vendor=1'
put dates/date '2027-06-30'
put dates/days '+30d'
put dates/february '2028-02-29'
put dates/time '2027-06-30T23:59:59Z'
printf '\x00\x5c\x26\x05\x00\x00\x00\x00' >"$out/dates/binary_time"

# --- manifests: the checked-in fixtures of formats 1 to 5, and one in the current format -
for v in 1 2 3 4 5; do cp "tests/data/vault-format-$v/manifest" "$out/manifest/format-$v"; done
v="$work/vault"
printf 'corpus-pin' >"$work/pin"
printf 'corpus-cmp-secret' >"$work/secret"
chmod 600 "$work/pin" "$work/secret"
cv() { "$cli" --vault "$v" --pin-file "$work/pin" "$@" >/dev/null; }
cv init --label corpus --kdf-ops 1 --kdf-mem-kib 8
cv ca create --end-date 2099-12-31
cv create client --end-date 2098-12-31 --san DNS:client.example.com,URI:spiffe://example.com/c
cv rotate client
cv create --self-signed other --end-date 2098-06-30
cv create retired --end-date 2098-06-30
cv revoke retired --reason superseded
cv access client allow --uid 1234
cv access other public
cv policy set --max-end-date 2099-01-31 --renew-before 30d --max-lifetime 3650d
cv renew-rule client --at 2/3 --then 'systemctl reload nginx'
"$cli" --vault "$v" ca show --pem >"$work/ca.pem" 2>/dev/null ||
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
    -subj /CN=trust -days 3650 -out "$work/ca.pem" 2>/dev/null
cv issuer add corp --cmp http://127.0.0.1:1/pkix/ --cmp-ref ref-1 --cmp-secret-file "$work/secret" --trust "$work/ca.pem"
cv issuer add acme1 --acme https://127.0.0.1:1/dir --trust "$work/ca.pem" --dns01-hook 'true'
cp "$v/manifest" "$out/manifest/format-current"

# --- import: PKCS#12, PEM, DER, PKCS#7 (first byte: the mode, import_fuzz.cc) --------
key="$work/key.pem" cert="$work/cert.pem"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$key" \
  -subj /CN=corpus -days 3650 -addext extendedKeyUsage=clientAuth -out "$cert" 2>/dev/null
openssl req -x509 -newkey ed25519 -nodes -keyout "$work/ed.pem" -subj /CN=corpus-ed -days 3650 \
  -addext extendedKeyUsage=clientAuth -out "$work/ed-cert.pem" 2>/dev/null
with_mode() { { printf "\\x$1"; cat "$2"; } >"$out/import/$3"; }
# Few iterations, so that each run is fast; the fuzzer may raise them.
p12() { openssl pkcs12 -export -inkey "$1" -in "$2" -passout "pass:$3" -iter 1 -maciter "${@:5}" -out "$4"; }
p12 "$key" "$cert" fuzz-p12 "$work/aes.p12" -keypbe AES-256-CBC -certpbe AES-256-CBC -macalg sha256
p12 "$key" "$cert" fuzz-p12 "$work/3des.p12" -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES
p12 "$work/ed.pem" "$work/ed-cert.pem" '' "$work/empty.p12"
openssl pkcs12 -export -legacy -inkey "$key" -in "$cert" -passout pass:fuzz-p12 -iter 1 \
  -out "$work/legacy.p12" 2>/dev/null
with_mode 00 "$work/aes.p12" p12_aes
with_mode 00 "$work/3des.p12" p12_3des
with_mode 00 "$work/legacy.p12" p12_legacy_rc2
with_mode 04 "$work/empty.p12" p12_empty_password
cat "$cert" "$key" "$work/ca.pem" >"$work/both.pem"
with_mode 01 "$work/both.pem" pem_cert_key_chain
openssl x509 -in "$cert" -outform DER -out "$work/cert.der"
with_mode 02 "$work/cert.der" der_cert
openssl crl2pkcs7 -nocrl -certfile "$cert" -certfile "$work/ca.pem" -outform DER -out "$work/chain.p7b"
with_mode 02 "$work/chain.p7b" p7b_der
with_mode 02 "$work/ca.pem" pem_cert

# --- URI-in-PEM files, as `certvault uri --pem` writes them ---------------------------
uri_pem() { printf -- '-----BEGIN CERTVAULT URI-----\n%s\n-----END CERTVAULT URI-----\n' \
  "$(printf '%s' "$1" | base64 -w 64)" >"$out/uri_pem/$2"; }
uri_pem certvault:fuzz-ec ec
uri_pem certvault:fuzz-ed25519 ed25519
uri_pem 'certvault:fuzz-ec?pin-value=fuzz-pin-4711' pin_value_refused
uri_pem 'certvault:no-such-entry' not_found
uri_pem 'certvault:fuzz-ec?vault=/nonexistent' other_vault

# --- PKCS#11 templates (encoding: pkcs11_templates_fuzz.cc) ---------------------------
python3 - "$out/pkcs11_templates" "$work/cert.der" <<'PY'
import struct, sys
out, cert = sys.argv[1], open(sys.argv[2], 'rb').read()
CKA_CLASS, CKA_TOKEN, CKA_LABEL, CKA_VALUE, CKA_CERTIFICATE_TYPE, CKA_ID, CKA_KEY_TYPE = 0, 1, 3, 0x11, 0x80, 0x102, 0x100
CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY = 1, 2, 3
def value(t, v): return struct.pack('>IBH', t, 0, len(v)) + v
def ulong(t, n): return value(t, struct.pack('<Q', n))
def null(t, n): return struct.pack('>IBQ', t, 1, n)
def empty(t): return struct.pack('>IB', t, 2)
seeds = {
  'all': b'\0',
  'null_template': b'\1' + ulong(CKA_CLASS, CKO_CERTIFICATE),
  'private_key_by_label': b'\0' + ulong(CKA_CLASS, CKO_PRIVATE_KEY) + value(CKA_LABEL, b'fuzz-ec'),
  'public_key_by_type': b'\0' + ulong(CKA_CLASS, CKO_PUBLIC_KEY) + ulong(CKA_KEY_TYPE, 3),
  'certificate_by_id': b'\0' + ulong(CKA_CLASS, CKO_CERTIFICATE) + empty(CKA_ID) + value(CKA_TOKEN, b'\1'),
  'null_values': b'\0' + null(CKA_LABEL, 7) + null(CKA_VALUE, 2**64 - 1) + value(CKA_CLASS, b'\3\0\0'),
  'create_certificate': b'\0' + ulong(CKA_CLASS, CKO_CERTIFICATE) + ulong(CKA_CERTIFICATE_TYPE, 0)
      + value(CKA_TOKEN, b'\1') + value(CKA_LABEL, b'fuzz-ec') + value(CKA_VALUE, cert),
}
for name, data in seeds.items():
    open(f'{out}/{name}', 'wb').write(data)
PY
echo "seed corpora written to $out/"

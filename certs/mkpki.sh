#!/bin/sh
# Makes a demo or test PKI with the openssl CLI: a root CA and the server certificates of
# the example configuration, plus a second CA for client certificates and one client.
# Usage: certs/mkpki.sh DIR    (skips when DIR already holds a complete PKI; FORCE=1 remakes it)
#
#   ca.crt/key          root CA (RSA-2048) that signs every server certificate
#   www-ecdsa.crt/key   P-256     DNS:localhost, DNS:www.example.com, IP:127.0.0.1
#   www-rsa.crt/key     RSA-2048  the same names (dual-certificate pair with www-ecdsa)
#   shop.crt/key        P-256     DNS:shop.example.com
#   wild.crt/key        P-256     DNS:*.example.org
#   clients-ca.crt/key  CA (P-256) for mutual authentication, clients-ca.crl (empty CRL)
#   client.crt/key      P-256     CN=client, signed by clients-ca
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
days=825

files="ca.crt ca.key www-ecdsa.crt www-ecdsa.key www-rsa.crt www-rsa.key shop.crt shop.key
wild.crt wild.key clients-ca.crt clients-ca.key clients-ca.crl client.crt client.key"

complete=1
for f in $files; do
    [ -s "$dir/$f" ] || complete=0
done
if [ "$complete" = 1 ] && [ "${FORCE:-0}" != 1 ]; then
    echo "mkpki: $dir already has a PKI (FORCE=1 to remake it)"
    exit 0
fi

mkdir -p "$dir"
# Build in a scratch folder beside the target and move the results in at the end, so an
# interrupted run never leaves a half-made PKI that the idempotency check would accept.
work=$(mktemp -d "$dir/.mkpki.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 1' INT TERM
umask 077

serial() { echo "0x$(openssl rand -hex 16)"; }

key_ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
    -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null; }
key_rsa() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }

# self_signed_ca NAME KEYTYPE SUBJECT
self_signed_ca() {
    "key_$2" "$work/$1.key"
    cat >"$work/$1.ext" <<EOF
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF
    openssl req -new -key "$work/$1.key" -subj "$3" -out "$work/$1.csr"
    openssl x509 -req -in "$work/$1.csr" -signkey "$work/$1.key" -days $((days * 2)) \
        -set_serial "$(serial)" -extfile "$work/$1.ext" -sha256 -out "$work/$1.crt" 2>/dev/null
}

# leaf NAME KEYTYPE SUBJECT ISSUER EXTENSIONS
leaf() {
    "key_$2" "$work/$1.key"
    printf '%s\n' "$5" >"$work/$1.ext"
    openssl req -new -key "$work/$1.key" -subj "$3" -out "$work/$1.csr"
    openssl x509 -req -in "$work/$1.csr" -CA "$work/$4.crt" -CAkey "$work/$4.key" \
        -days "$days" -set_serial "$(serial)" -extfile "$work/$1.ext" -sha256 \
        -out "$work/$1.crt" 2>/dev/null
}

server_ext() {
    # $1: key usages, $2: subjectAltName
    printf 'basicConstraints = critical, CA:false\nkeyUsage = critical, %s\nextendedKeyUsage = serverAuth\nsubjectAltName = %s\nauthorityKeyIdentifier = keyid\n' "$1" "$2"
}

www_names="DNS:localhost, DNS:www.example.com, IP:127.0.0.1"

self_signed_ca ca rsa "/O=tollgate demo/CN=tollgate demo root CA"
leaf www-ecdsa ec "/O=tollgate demo/CN=www.example.com" ca \
    "$(server_ext digitalSignature "$www_names")"
# keyEncipherment too: the old policies' static-RSA suites encrypt to this key.
leaf www-rsa rsa "/O=tollgate demo/CN=www.example.com" ca \
    "$(server_ext "digitalSignature, keyEncipherment" "$www_names")"
leaf shop ec "/O=tollgate demo/CN=shop.example.com" ca \
    "$(server_ext digitalSignature "DNS:shop.example.com")"
leaf wild ec "/O=tollgate demo/CN=*.example.org" ca \
    "$(server_ext digitalSignature "DNS:*.example.org")"

self_signed_ca clients-ca ec "/O=tollgate demo/CN=tollgate demo clients CA"
leaf client ec "/O=tollgate demo/CN=client" clients-ca \
    "$(printf 'basicConstraints = critical, CA:false\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = clientAuth\nauthorityKeyIdentifier = keyid\n')"

# An empty CRL for clients-ca, made with a minimal `openssl ca` database.
mkdir -p "$work/cadb"
: >"$work/cadb/index.txt"
echo 01 >"$work/cadb/crlnumber"
cat >"$work/cadb/ca.cnf" <<EOF
[ ca ]
default_ca = clients
[ clients ]
database = $work/cadb/index.txt
crlnumber = $work/cadb/crlnumber
certificate = $work/clients-ca.crt
private_key = $work/clients-ca.key
default_md = sha256
default_crl_days = $days
EOF
openssl ca -batch -config "$work/cadb/ca.cnf" -gencrl -out "$work/clients-ca.crl" 2>/dev/null

for f in $files; do
    mv -f "$work/$f" "$dir/$f"
done
chmod 600 "$dir"/*.key
chmod 644 "$dir"/*.crt "$dir"/*.crl
echo "mkpki: made a PKI in $dir"

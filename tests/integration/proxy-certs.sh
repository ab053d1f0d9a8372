#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Test PKI for the proxy integration test, made with the openssl CLI.
# Usage: proxy-certs.sh DIR    (quiet unless something fails)
#
# DIR/ca.pem, ca.key            test CA (EC P-256)
# DIR/server.pem, server.key    SAN IP:127.0.0.1, DNS:upstream.test; signed by ca
# DIR/server.pin                sha256//BASE64 of server.pem's public key (curl pin form)
# DIR/wrongca.pem, wrongca.key  an unrelated CA
# DIR/wrong.pem, wrong.key      same SANs as server.pem, signed by wrongca
# DIR/other.pem, other.key      SAN DNS:other.test only, signed by ca (name mismatch)
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
D=$1
mkdir -p "$D"
log=$D/openssl.log
: >"$log"
# shellcheck disable=SC2154 # rc is assigned inside the trap
trap 'rc=$?; [ "$rc" = 0 ] || { echo "proxy-certs.sh: openssl failed:" >&2; cat "$log" >&2; }; exit $rc' EXIT

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$D/$1.key" >>"$log" 2>&1; }

ca() { # ca NAME CN
        key "$1"
        openssl req -x509 -new -key "$D/$1.key" -sha256 -days 30 -subj "/CN=$2" \
                -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" \
                -addext "subjectKeyIdentifier=hash" \
                -out "$D/$1.pem" >>"$log" 2>&1
}

leaf() { # leaf NAME CA SAN
        key "$1"
        openssl req -new -key "$D/$1.key" -subj "/CN=credbroker test $1" -out "$D/$1.csr" >>"$log" 2>&1
        cat >"$D/$1.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=$3
EOF
        openssl x509 -req -in "$D/$1.csr" -CA "$D/$2.pem" -CAkey "$D/$2.key" -CAcreateserial \
                -sha256 -days 30 -extfile "$D/$1.ext" -out "$D/$1.pem" >>"$log" 2>&1
        rm -f "$D/$1.csr" "$D/$1.ext"
}

ca ca "credbroker test CA"
ca wrongca "unrelated test CA"
leaf server ca "IP:127.0.0.1,DNS:upstream.test"
leaf wrong wrongca "IP:127.0.0.1,DNS:upstream.test"
leaf other ca "DNS:other.test"
printf 'sha256//%s\n' "$(openssl x509 -in "$D/server.pem" -pubkey -noout 2>>"$log" |
        openssl pkey -pubin -outform DER 2>>"$log" | openssl dgst -sha256 -binary | base64)" >"$D/server.pin"
openssl verify -CAfile "$D/ca.pem" "$D/server.pem" "$D/other.pem" >>"$log" 2>&1
openssl verify -CAfile "$D/wrongca.pem" "$D/wrong.pem" >>"$log" 2>&1
rm -f "$D"/*.srl "$log"
chmod 0644 "$D"/*.pem "$D/server.pin"
chmod 0600 "$D"/*.key

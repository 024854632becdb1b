#!/usr/bin/env bash
# Makes the TLS fixtures of the federation tests (crates/server/tests/fixtures/tls): a test
# certificate authority, a node certificate it signs for 127.0.0.1 and localhost, and a second,
# unrelated authority (a coordinator trusting it must refuse the node). Valid for 100 years; the
# keys are test keys, public in this repository: never use them for a real node.
# Usage: scripts/make-test-certs.sh (from anywhere; overwrites the fixtures).
set -euo pipefail
cd "$(dirname "$0")/../crates/server/tests/fixtures/tls"
days=36500
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $days \
    -subj "/CN=borderlens test federation CA" -keyout ca.key -out ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=borderlens test node" -keyout node.key -out node.csr
openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
    -extfile <(printf "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature") \
    -out node.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days $days \
    -subj "/CN=another authority" -keyout other-ca.key -out other-ca.pem \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
rm -f node.csr ca.srl ca.key other-ca.key
echo "TLS test fixtures in $(pwd)"

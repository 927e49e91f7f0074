#!/usr/bin/env bash
# Generates a local CA and a server certificate for Mosquitto's TLS listener, in mosquitto/certs/.
#   mosquitto/make-certs.sh [HOSTNAME...]     (default names: broker localhost 127.0.0.1)
#   CERTS_DIR=/elsewhere mosquitto/make-certs.sh   (another directory; the TLS test uses this)
# Then uncomment the TLS listener in mosquitto/mosquitto.conf and connect with
#   --broker mqtts://localhost:8883 --ca-file mosquitto/certs/ca.crt
set -euo pipefail
dir="${CERTS_DIR:-$(cd "$(dirname "$0")" && pwd)/certs}"
mkdir -p "$dir"
command -v openssl >/dev/null || { echo "make-certs: openssl not found (apt-get install openssl)" >&2; exit 1; }
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(broker localhost 127.0.0.1)
san=""
for n in "${names[@]}"; do
  if [[ "$n" =~ ^[0-9.]+$ ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san="${san%,}"
openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=mqtt-home local CA" \
  -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
openssl req -newkey rsa:3072 -nodes -subj "/CN=${names[0]}" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial -days 825 \
  -extfile <(printf "subjectAltName=%s\nextendedKeyUsage=serverAuth" "$san") -out "$dir/server.crt" 2>/dev/null
rm -f "$dir/server.csr" "$dir/ca.srl"
chmod 0644 "$dir/ca.crt" "$dir/server.crt"; chmod 0640 "$dir/server.key" "$dir/ca.key"
echo "make-certs: CA $dir/ca.crt, server certificate for $san in $dir/server.crt"
echo "make-certs: the broker must be able to read server.key: in compose, chown 1883 $dir/server.key"

#!/bin/sh
# The README's first quick-start command: installs dependencies, builds RelayPro and runs it in
# the foreground on the demo configuration (etc/demo/config.yml) in front of a stand-in console
# on this machine, so a Responder's path can be tried with curl. Ctrl-C stops both.
#
# The stand-in console is `openssl s_server -www` on 127.0.0.1:18443 (its status page answers
# every GET); the console simulator of the console-integration issue will take its place.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
packaging/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release --target relaypro

demo="$top/etc/demo"
state="$top/build/demo"
mkdir -p "$state"
cp "$demo/config.yml" "$state/config.yml"
printf 'demo:demo-password\n' > "$state/passwords.txt"
printf '127.0.0.1 localhost\n' > "$state/hosts"
printf 'RELAYPRO_PASSWORD_FILE=%s\nRELAYPRO_HOSTS_FILE=%s\n' "$state/passwords.txt" "$state/hosts" > "$state/environment.conf"

if [ ! -f "$state/console.pem" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout "$state/console.key" -out "$state/console.pem" 2>/dev/null
fi
openssl s_server -accept 127.0.0.1:18443 -cert "$state/console.pem" -key "$state/console.key" -www -quiet >/dev/null 2>&1 &
console=$!
trap 'kill "$console" 2>/dev/null || true' EXIT INT TERM

cat <<MSG

RelayPro demo: relay on https://127.0.0.1:9443, stand-in console on https://localhost:18443.
Try, in another terminal:

  https_proxy=https://127.0.0.1:9443 curl --proxy-user demo:demo-password --proxy-insecure -k https://localhost:18443/
  curl -k https://127.0.0.1:9443/relaypro/v1/health

Logs: $state/logs/relaypro.log.txt  (Ctrl-C stops the demo)

MSG
RELAYPRO_ENV_FILE="$state/environment.conf" "$top/build/release/supervisor/relaypro" run --config "$state/config.yml" --user root

#!/bin/sh
# The README's first quick-start command: installs dependencies, builds RelayPro, starts the
# console simulator (test/tools/console_sim.py) and RelayPro as a fresh installation would run:
# RelayPro creates its CA bundle, registers with the console through a deployment token, a
# Responder gets a token from the token endpoint and tunnels with it, and with Basic from the dev
# password file. It prints what happened, then leaves RelayPro serving in the foreground until
# Ctrl-C.
#
#   packaging/demo.sh           the demo (state in build/demo, made afresh each run)
#   packaging/demo.sh --check   the same checks, then stop (the test suite runs this)
#
# Environment: DEMO_HOST (default 127.0.0.1) is where both listen; DEMO_STATE the state folder
# (default build/demo); RELAYPRO_DEMO_BINARY skips the build and runs that binary.
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
check=no
[ "${1:-}" = "--check" ] && check=yes

host=${DEMO_HOST:-127.0.0.1}
relay_port=9443
console_port=18443
state=${DEMO_STATE:-"$top/build/demo"}

packaging/install-deps.sh >/dev/null
if [ -n "${RELAYPRO_DEMO_BINARY:-}" ]; then
    relaypro=$RELAYPRO_DEMO_BINARY
else
    echo "demo: building RelayPro (build/demo-build) ..."
    cmake -S . -B build/demo-build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build/demo-build --target relaypro >/dev/null
    relaypro="$top/build/demo-build/supervisor/relaypro"
fi

# A fresh installation every run: no CA bundle, no registration yet.
rm -rf "$state"
mkdir -p "$state/console"
cp "$top/etc/demo/config.yml" "$state/config.yml"
sed -i "s/127\.0\.0\.1/$host/g" "$state/config.yml"
chmod 600 "$state/config.yml"
printf 'demo:demo-password\n' > "$state/passwords.txt"
printf '%s localhost console.test\n' "$host" > "$state/hosts"
cat > "$state/console/state.json" <<JSON
{"deploymentTokens": ["demo-deployment-token"],
 "responders": {"demo-responder": "demo-credential"}}
JSON

console=""
relay=""
cleanup() {
    [ -n "$relay" ] && kill "$relay" 2>/dev/null && wait "$relay" 2>/dev/null
    [ -n "$console" ] && kill "$console" 2>/dev/null
    return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "demo: FAILED: $*" >&2
    [ -f "$state/logs/relaypro.log.txt" ] && tail -n 20 "$state/logs/relaypro.log.txt" >&2
    exit 1
}

/usr/bin/python3 "$top/test/tools/console_sim.py" --dir "$state/console" --host "$host" --port "$console_port" \
    > "$state/console/out.txt" 2> "$state/console/err.txt" &
console=$!
i=0
until grep -q '^listening' "$state/console/out.txt" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 100 ] && fail "the console simulator did not start: $(cat "$state/console/err.txt")"
    sleep 0.1
done

cat > "$state/environment.conf" <<ENV
AIR_DEPLOYMENT_TOKEN=demo-deployment-token
AIR_CONSOLE_CA_CERT=$state/console/ca.pem
RELAYPRO_PASSWORD_FILE=$state/passwords.txt
RELAYPRO_HOSTS_FILE=$state/hosts
ENV
RELAYPRO_ENV_FILE="$state/environment.conf" "$relaypro" run --config "$state/config.yml" --user root \
    > "$state/stdout.txt" 2> "$state/stderr.txt" &
relay=$!
log="$state/logs/relaypro.log.txt"
i=0
until grep -q '"msg":"registered"' "$log" 2>/dev/null; do
    i=$((i + 1)); [ $i -gt 300 ] && fail "RelayPro did not register within 30 s"
    kill -0 "$relay" 2>/dev/null || fail "RelayPro stopped: $(cat "$state/stderr.txt")"
    sleep 0.1
done
relay_id=$(sed -n 's/^relayId: //p' "$state/config.yml")

url="https://$host:$relay_port"
curl -s -k -o "$state/relay-ca.pem" "$url/relaypro/v1/ca.pem" || fail "cannot fetch the relay's CA certificate"
answer=$(curl -s --cacert "$state/relay-ca.pem" -H 'Content-Type: application/json' \
    --data '{"responderId":"demo-responder","credential":"demo-credential"}' "$url/relaypro/v1/token") \
    || fail "the token endpoint did not answer"
token=$(printf '%s' "$answer" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
expires=$(printf '%s' "$answer" | sed -n 's/.*"expiresAt":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || fail "no token: $answer"

target="https://localhost:$console_port/api/app/check"
bearer=$(curl -s -o /dev/null -w '%{http_code}' --proxy "$url" --proxy-cacert "$state/relay-ca.pem" \
    --proxy-header "Proxy-Authorization: Bearer $token" --cacert "$state/console/ca.pem" \
    --resolve "localhost:$console_port:$host" "$target") || true
[ "$bearer" = 200 ] || fail "the tunnel with the Responder token answered $bearer"
basic=$(curl -s -o /dev/null -w '%{http_code}' --proxy "$url" --proxy-cacert "$state/relay-ca.pem" \
    --proxy-user demo:demo-password --cacert "$state/console/ca.pem" \
    --resolve "localhost:$console_port:$host" "$target") || true
[ "$basic" = 200 ] || fail "the tunnel with Basic answered $basic"

cat <<MSG

RelayPro demo
  registered as relay $relay_id with the console simulator on $host:$console_port
  CA bundle created:  $state/private/ca-bundle.pem
  Responder token:    issued to demo-responder, expires at $expires
  tunnel with token:  OK (HTTP $bearer from $target)
  tunnel with Basic:  OK (HTTP $basic, user demo from the dev password file)
  log file:           $log

MSG
if [ "$check" = yes ]; then
    echo "demo: all checks passed"
    exit 0
fi
cat <<MSG
RelayPro is serving on $url. Try, in another terminal:

  curl --proxy $url --proxy-cacert $state/relay-ca.pem --proxy-user demo:demo-password \\
       --cacert $state/console/ca.pem --resolve localhost:$console_port:$host $target

Ctrl-C stops the demo.
MSG
wait "$relay"

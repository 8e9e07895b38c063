#!/bin/sh
# The README's first quick-start command: installs dependencies, builds RelayPro and runs it on
# the embedded demo configuration (etc/demo/config.yml).
#
# Today the relay's serving side is not built yet (see the project's issues), so the demo
# validates the demo configuration and prints the effective settings RelayPro would run with.
# It turns into `relaypro run` on the demo config once the relay serves.
set -eu
cd "$(dirname "$0")/.."
packaging/install-deps.sh
cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/release --target relaypro
demo=$(pwd)/etc/demo
export RELAYPRO_ENV_FILE="$demo/environment.conf"
./build/release/supervisor/relaypro version
exec ./build/release/supervisor/relaypro check-config --config "$demo/config.yml"

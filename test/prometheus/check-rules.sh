#!/bin/sh
# The shipped alerting rules are valid (promtool check rules) and each alert fires when its
# condition holds (promtool test rules, test/prometheus/alerts_test.yml). Skipped (77) without
# promtool, which Debian's prometheus package brings (packaging/install-deps.sh installs it).
set -eu
top=${1:?usage: check-rules.sh SOURCE_DIR}
if ! command -v promtool >/dev/null 2>&1; then
    echo "check-rules: promtool is not installed (apt-get install prometheus): skipped" >&2
    exit 77
fi
promtool check rules "$top/packaging/relaypro-alerts.yml"
cd "$top/test/prometheus"
promtool test rules alerts_test.yml

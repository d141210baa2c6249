#!/usr/bin/env bash
# System (Debian) packages the test suite drives for real: headless Chromium for the review
# page test, PostgreSQL for the Prefect-server-on-PostgreSQL flow test (tests/prefect_server.py) and
# for scripts/facility_up.sh's local cluster (tests/test_facility.py; it also uses runuser, getent and
# sha256sum, which every Debian system has).  Idempotent: a package already installed is left alone and nothing is fetched,
# so `make test` calls this on every run.  Needs root and apt-get (CI runs as root on
# Debian); elsewhere it says what is missing and exits 0, and the tests that need a package
# skip with a reason naming it.
set -euo pipefail

PACKAGES=(chromium postgresql)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    echo "install_test_deps: not root or no apt-get; missing ${missing[*]} (their tests will skip)" >&2
    exit 0
fi
echo "install_test_deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A mirror hiccup should not fail a CI run: three tries.
for attempt in 1 2 3; do
    if apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        exit 0
    fi
    echo "install_test_deps: attempt $attempt failed" >&2
    sleep $((attempt * 5))
done
echo "install_test_deps: could not install ${missing[*]}" >&2
exit 1

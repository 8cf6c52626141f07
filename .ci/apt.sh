#!/usr/bin/env bash
# System packages the tests need and pip cannot bring. Idempotent: installs only what is missing.
# - Chromium, for tests/e2e/test_page.py (driven through Playwright's Python package; no browser
#   is ever downloaded by Playwright);
# - redis-server and PostgreSQL (Debian 12's is 15), which tests/servers.py starts on loopback for the tests of
#   the shared rate limit and of the PostgreSQL database (with CI=true a missing one fails);
# - opencv-doc, for its sample clip vtest.avi (pedestrians seen from above: small people, moving),
#   part of the real-footage corpus (tests/corpus.py).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || missing+=(opencv-doc)
if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
/usr/bin/chromium --version 2>/dev/null  # (its launcher warns about /dev/shm on stderr)
/usr/bin/redis-server --version
postgres=$(ls -d /usr/lib/postgresql/*/bin/postgres | sort -V | tail -1)
"$postgres" --version

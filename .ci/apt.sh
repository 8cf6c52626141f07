#!/usr/bin/env bash
# System packages the tests need and pip cannot bring: Chromium, for tests/e2e/test_page.py
# (driven through Playwright's Python package; no browser is ever downloaded by Playwright).
# Idempotent: installs only what is missing.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -q
    $sudo apt-get install -y -q --no-install-recommends chromium
fi
/usr/bin/chromium --version 2>/dev/null  # (its launcher warns about /dev/shm on stderr)

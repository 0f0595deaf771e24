#!/usr/bin/env bash
# Prepare this checkout on a fresh Debian/Ubuntu machine: system packages via apt,
# a virtualenv in .venv with the project installed. Safe to run any number of times:
# it only installs what is missing.
#
#   scripts/bootstrap.sh            what the service needs
#   scripts/bootstrap.sh --test     plus what the test suite needs (PostgreSQL, SIPp,
#                                   nginx, Chromium with CJK fonts for the browser tests)
set -euo pipefail
cd "$(dirname "$0")/.."

want=(redis-server espeak-ng sox)
if [[ "${1:-}" == "--test" ]]; then
    want+=(postgresql sip-tester fonts-noto-cjk nginx)
    # Debian's Chromium drives the browser tests (Playwright cannot download its own
    # browser here); Ubuntu ships it as a snap only, so there it is left out and the
    # browser tests skip, saying so.
    if apt-cache show chromium 2>/dev/null | grep -q '^Filename:'; then
        want+=(chromium)
    fi
fi

missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
# A Python without the venv module (Debian's python3 without python3-venv).
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=("python3-venv")
fi

if ((${#missing[@]})); then
    echo "bootstrap: installing ${missing[*]} with apt-get"
    sudo_cmd=()
    [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get update -qq
    "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's nginx starts a system service when installed; the front-proxy tests run
    # their own nginx on free ports, so the one just installed is switched off.
    if [[ " ${missing[*]} " == *" nginx "* && -d /run/systemd/system ]]; then
        "${sudo_cmd[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
    fi
fi

if [[ ! -x .venv/bin/python ]]; then
    echo "bootstrap: creating .venv"
    python3 -m venv .venv
fi

# Reinstall only when the dependency list changed.
stamp=".venv/.hotline-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f "$stamp" ]]; then
    echo "bootstrap: installing Python packages into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    rm -f .venv/.hotline-installed-*
    touch "$stamp"
fi

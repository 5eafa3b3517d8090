#!/usr/bin/env bash
# Installs what building and testing this workspace needs on Debian, and only
# what is missing. Safe to run again: it does nothing when all is there.
set -euo pipefail

# Debian packages: pkg-config and libtss2-dev build tss-esapi (the TPM layer);
# swtpm, swtpm-tools and tpm2-tools give tests real software TPMs and an
# independent quote checker; openssl checks the SM2 and RSA-PSS quotes that
# tpm2_checkquote cannot; postgresql gives the store's test a real PostgreSQL
# server (started by the test itself on a free loopback port); python3-venv
# holds the Python test peers (below); tmux runs tnc-monitor in a
# pseudo-terminal for its end-to-end test; libssl-dev lets the SM2 test build
# its OpenSSL peer (pki/tests/peers/openssl_sm2.c) with the machine's cc.
packages=(pkg-config libtss2-dev swtpm swtpm-tools tpm2-tools openssl postgresql python3-venv tmux libssl-dev)

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != "installed" ]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    apt_get=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt_get=(sudo apt-get)
  else
    echo "setup: these Debian packages are missing: ${missing[*]}" >&2
    echo "setup: run 'sudo scripts/setup.sh' (or as root: apt-get install ${missing[*]}), then try again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${apt_get[@]}" update -qq
  "${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "setup: installed ${missing[*]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing: install Rust (https://rustup.rs, stable toolchain), then try again" >&2
  exit 1
fi

# Python test peers, in a venv inside the workspace (.venv, ignored by git),
# never system-wide: Tongsuo 8.3 (PyPI tongsuopy, a wheel bundling it) is the
# independent RFC 8998 peer of the ShangMi TLS tests; openapi-spec-validator
# checks the admin API's OpenAPI document.
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
if ! "$venv/bin/python" -c "import tongsuopy, openapi_spec_validator" >/dev/null 2>&1; then
  echo "setup: creating $venv with tongsuopy and openapi-spec-validator"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "tongsuopy==1.0.1" \
    "openapi-spec-validator==0.7.1"
fi

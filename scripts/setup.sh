#!/usr/bin/env bash
# Installs what building and testing this workspace needs on Debian, and only
# what is missing. Safe to run again: it does nothing when all is there.
set -euo pipefail

# Debian packages: pkg-config and libtss2-dev build tss-esapi (the TPM layer);
# swtpm, swtpm-tools and tpm2-tools give tests real software TPMs and an
# independent quote checker; openssl checks the SM2 and RSA-PSS quotes that
# tpm2_checkquote cannot; postgresql gives the store's test a real PostgreSQL
# server (started by the test itself on a free loopback port).
packages=(pkg-config libtss2-dev swtpm swtpm-tools tpm2-tools openssl postgresql)

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

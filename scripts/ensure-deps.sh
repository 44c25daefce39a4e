#!/usr/bin/env bash
# Installs what a fresh Debian or Ubuntu machine with a Rust toolchain lacks to build
# ieschain: libclang (bindgen, for RocksDB's bindings) and a C++ compiler (RocksDB itself).
# As root it installs them with apt; otherwise it prints the exact command and stops.
set -euo pipefail

missing=()
if ! dpkg -s libclang-dev >/dev/null 2>&1 && ! ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'; then
  missing+=(libclang-dev)
fi
if ! command -v c++ >/dev/null 2>&1; then
  missing+=(g++)
fi
if ! command -v make >/dev/null 2>&1; then
  missing+=(make)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "ensure-deps: installing ${missing[*]}" >&2
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
else
  echo "ensure-deps: missing ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

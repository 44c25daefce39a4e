#!/usr/bin/env bash
# Installs what a fresh Debian or Ubuntu machine with a Rust toolchain lacks to build
# ieschain: libclang (bindgen, for RocksDB's bindings) and a C++ compiler (RocksDB itself).
# With --browser (what `make test` passes), also a headless browser for the explorer's
# browser test: Debian's chromium. A browser that cannot be installed is not fatal: the
# test then says loudly that it skipped.
#
# libclang is taken as present when LIBCLANG_PATH names a directory holding it (bindgen
# reads that variable), when the dynamic linker knows it, or when Debian's package is
# installed. On Debian or Ubuntu, as root, what is missing is installed with apt; elsewhere,
# or without root, the script names what is missing and stops.
set -euo pipefail

has_libclang() {
  if [ -n "${LIBCLANG_PATH:-}" ] && compgen -G "${LIBCLANG_PATH%/}/libclang*.so*" >/dev/null \
    || { [ -n "${LIBCLANG_PATH:-}" ] && compgen -G "${LIBCLANG_PATH%/}/libclang*.dylib" >/dev/null; }; then
    return 0
  fi
  if command -v ldconfig >/dev/null 2>&1 && ldconfig -p 2>/dev/null | grep -q 'libclang\(-[0-9.]*\)\?\.so'; then
    return 0
  fi
  command -v dpkg >/dev/null 2>&1 && dpkg -s libclang-dev >/dev/null 2>&1
}

browser=0
[ "${1:-}" = "--browser" ] && browser=1

has_browser() {
  [ -n "${IESCHAIN_CHROMIUM:-}" ] && [ -x "${IESCHAIN_CHROMIUM}" ] && return 0
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
}

if [ "$browser" -eq 1 ] && ! has_browser; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-deps: installing chromium (the explorer's browser test)" >&2
    apt-get update || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y chromium \
      || echo "ensure-deps: WARNING: chromium could not be installed; the browser test will skip" >&2
  else
    echo "ensure-deps: WARNING: no chromium; the browser test will skip (install Debian's chromium)" >&2
  fi
fi

missing=()
has_libclang || missing+=(libclang-dev)
if ! command -v c++ >/dev/null 2>&1 && ! command -v g++ >/dev/null 2>&1 && ! command -v clang++ >/dev/null 2>&1; then
  missing+=(g++)
fi
command -v make >/dev/null 2>&1 || missing+=(make)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: installing ${missing[*]}" >&2
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
elif command -v apt-get >/dev/null 2>&1; then
  echo "ensure-deps: missing ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
else
  echo "ensure-deps: missing ${missing[*]} (Debian's names): install libclang, a C++ compiler" >&2
  echo "  and make with this system's package manager, or set LIBCLANG_PATH to the directory" >&2
  echo "  that holds libclang" >&2
  exit 1
fi

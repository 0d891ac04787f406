#!/usr/bin/env bash
# Installs what this machine lacks to build and test Gridwalk, and nothing it already has.
# Safe to run again and again; used by run.sh, test.sh and CI. Runs as root or with sudo.
set -euo pipefail

log() { printf '[setup] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; exit 1; fi
}

apt_updated=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Debian packages: ${missing[*]}"
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

command -v cargo >/dev/null || { log "Rust (cargo) is required: install it with rustup first"; exit 1; }

# The core bundles SQLite and builds it with the C compiler.
apt_install build-essential pkg-config

for extra in "$@"; do
  case "$extra" in
    photo-bench) apt_install imagemagick libvips-tools ;;
    *) log "unknown extra '$extra'"; exit 1 ;;
  esac
done

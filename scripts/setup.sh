#!/usr/bin/env bash
# Installs what this machine lacks to build and test Gridwalk, and nothing it already has.
# Safe to run again and again; used by run.sh, test.sh and CI. Runs as root or with sudo.
set -euo pipefail
cd "$(dirname "$0")/.."

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

command -v npm >/dev/null || { log "Node.js (npm) is required for the app's UI: install Node 20 or later first"; exit 1; }

# The core bundles SQLite and builds it with the C compiler; the Tauri app (a workspace member)
# builds against GTK and WebKitGTK (see ../shared/notes/BUILDING_HERE.md).
apt_install build-essential pkg-config curl file libssl-dev libxdo-dev libgtk-3-dev libwebkit2gtk-4.1-dev \
  libsoup-3.0-dev librsvg2-dev libayatana-appindicator3-dev
# The device's store is SQLCipher with its own OpenSSL built from source (an Android app has no
# system libcrypto to link): OpenSSL's build is driven by perl, with modules perl-base lacks.
apt_install perl make
# The relay's PostgreSQL store is tested against a real server the tests start themselves
# (initdb and pg_ctl on a temporary folder; no service is started here).
apt_install postgresql

# The UI's packages, exactly as locked; again only when the lock file changed since.
if [ ! -f ui/node_modules/.package-lock.json ] || ! cmp -s ui/package-lock.json ui/node_modules/.gridwalk-lock; then
  log "installing the UI's npm packages"
  (cd ui && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.gridwalk-lock)
fi

for extra in "$@"; do
  case "$extra" in
    photo-bench) apt_install imagemagick libvips-tools ;;
    # The browser and real-window tests: Debian's Chromium for playwright-core, and a virtual
    # display with WebKit's WebDriver for tauri-driver.
    ui-tests)
      apt_install chromium xvfb xauth webkit2gtk-driver
      if ! command -v tauri-driver >/dev/null && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
        log "installing tauri-driver"
        cargo install tauri-driver --locked --quiet
      fi
      ;;
    *) log "unknown extra '$extra'"; exit 1 ;;
  esac
done

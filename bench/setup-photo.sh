#!/usr/bin/env bash
# Installs the peers of `gridwalk-bench photo` (issue 4): ImageMagick and libvips' command-line
# tools, from Debian's packages. Does nothing when both are already there, so it is cheap to run
# before every benchmark. Needs root (CI and the project's machines run as root).
set -euo pipefail

have_peers() {
    { [ -x /usr/bin/convert-im6.q16 ] || [ -x /usr/bin/convert ]; } && command -v vipsthumbnail >/dev/null 2>&1
}

if have_peers; then
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
install() {
    apt-get install -y --no-install-recommends imagemagick libvips-tools
}
# The package lists of a fresh machine are empty: update them only when the install needs it.
if ! install; then
    apt-get update
    install
fi

if ! have_peers; then
    echo "setup-photo: imagemagick and libvips-tools were installed but convert or vipsthumbnail is still missing" >&2
    exit 1
fi

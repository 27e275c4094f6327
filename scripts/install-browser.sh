#!/usr/bin/env bash
# Installs the browser the storefront end-to-end test drives: Debian's Chromium, used by playwright-core
# through its executablePath (playwright never downloads a browser of its own here). Skips when present.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

sudo_if_needed apt-get update -qq
sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

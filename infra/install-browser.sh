#!/usr/bin/env sh
# Debian's Chromium for the dashboard tests (Playwright drives it; its own browser
# download does not work on these machines). Does nothing when it is there already.
set -eu
# axe-core (the accessibility checker the dashboard tests inject) from the npm registry,
# pinned and checked against its published SHA-512
AXE_VERSION=4.10.3
AXE_SHA512=Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIcrgq762Nkce856dYtJYLkuIoYZvGfTs/PbZhideTcEg==
AXE_DIR="$(dirname "$0")/../build/axe-core"
if [ ! -f "$AXE_DIR/axe-$AXE_VERSION.min.js" ]; then
  mkdir -p "$AXE_DIR"
  command -v npm >/dev/null || apt-get install -y npm >/dev/null
  (cd "$AXE_DIR" && npm pack --silent "axe-core@$AXE_VERSION" >/dev/null \
    && [ "$(openssl dgst -sha512 -binary "axe-core-$AXE_VERSION.tgz" | base64 -w0)" = "$AXE_SHA512" ] \
    && tar -xzf "axe-core-$AXE_VERSION.tgz" package/axe.min.js \
    && mv package/axe.min.js "axe-$AXE_VERSION.min.js" && rm -rf package "axe-core-$AXE_VERSION.tgz") \
    || { echo "axe-core $AXE_VERSION: download or hash check failed" >&2; exit 1; }
fi
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "chromium is missing: run 'sudo apt-get install -y chromium'" >&2
  exit 1
fi
apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }

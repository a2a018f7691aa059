#!/usr/bin/env bash
# Installs the web console's npm packages (package.json / package-lock.json at
# the repository root: playwright-core for the browser test in tests/e2e/).
# Idempotent: runs `npm ci` only when node_modules is missing or
# package-lock.json changed since the last install (a stamp in node_modules
# holds its SHA-256), and does nothing otherwise. Called by install-deps.sh,
# which installs node/npm and Debian's chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -f package-lock.json ] || exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "install-web-deps: npm is not installed (scripts/install-deps.sh installs it); skipped" >&2
  exit 0
fi

STAMP=node_modules/.cityloop-package-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ -d node_modules ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

echo "install-web-deps: npm ci" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
echo "$want" > "$STAMP"

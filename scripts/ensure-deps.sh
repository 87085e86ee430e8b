#!/usr/bin/env bash
# Installs the Node dependencies when package-lock.json changed since the last install, makes
# sure better-sqlite3's native addon loads, and builds. Sourced by demo.sh and test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node/npm not found: install Node.js 20 or newer" >&2
  exit 1
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "Node.js $(node -v) is too old: Holdfast needs Node.js 20 or newer" >&2
  exit 1
fi
# node_modules/.package-lock.json is npm's own record of the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
  touch node_modules/.package-lock.json
fi
# npm 11 skips install scripts unless approved (package.json "allowScripts").
if ! node -e "require('better-sqlite3')(':memory:').close()" >/dev/null 2>&1; then
  npm rebuild better-sqlite3
  node -e "require('better-sqlite3')(':memory:').close()"
fi
npm run --silent build

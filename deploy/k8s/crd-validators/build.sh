#!/usr/bin/env sh
# Rebuilds crd-validators.cjs from the pinned packages (package-lock.json), from the npm registry.
# Run it after changing entry.mjs or a version; commit package-lock.json and crd-validators.cjs.
set -eu
cd "$(dirname "$0")"
npm ci --ignore-scripts --no-audit --no-fund
npx esbuild entry.mjs --bundle --minify --platform=node --format=cjs --legal-comments=none \
    --outfile=crd-validators.cjs
rm -rf node_modules

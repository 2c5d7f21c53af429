#!/usr/bin/env bash
# tests/embed/gen_reference.sh — regenerate tests/embed/reference.json, the
# oracle for tests/embed/test_cnn.c.  Not run by the build: the output is
# committed.  Needs the converted model (models/fetch) and network access to
# the npm registry: installs @tensorflow/tfjs (pure-JS CPU backend, no native
# download) into a throw-away directory, then runs gen_reference.js.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
TFJS_VERSION="4.22.0"

"$root/models/fetch"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund --ignore-scripts \
   "@tensorflow/tfjs@$TFJS_VERSION" >/dev/null)
NODE_PATH="$tmp/node_modules" node "$root/tests/embed/gen_reference.js" \
  "$root/models/mobilenet_v2" "$root/tests/embed/reference.json"

#!/usr/bin/env bash
# models/gen_calibration.sh — regenerate models/mobilenet_v2/calibration.json,
# the int8 activation ranges of the learned descriptor (see models/README.md,
# "Int8 inference").  Not run by the build or by scripts/setup: the output is
# committed (like tests/embed/reference.json), because making it needs the
# built tool.  Needs the converted model (models/fetch), a build of the
# project (BUILD, default build/) and the calibration images: every PNG of
# Debian's tuxpaint-stamps-default (/usr/share/tuxpaint/stamps, 802 PNGs in
# Debian 12's 2022.06.04-1; scripts/setup installs it for the demo catalog).
# Takes ~1.5 minutes on one core.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD:-$root/build}"
images="${IMAGES:-/usr/share/tuxpaint/stamps}"

"$root/models/fetch"
ninja -C "$build" models/calibrate >/dev/null
"$build/models/calibrate" --model "$root/models/mobilenet_v2" --layer out_relu --images "$images" \
  --out "$root/models/mobilenet_v2/calibration.json"

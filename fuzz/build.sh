#!/usr/bin/env bash
# fuzz/build.sh — build the libFuzzer targets with clang into build-fuzz/.
#
# The project's meson build uses gcc; libFuzzer needs clang, so the fuzz
# build is its own small script: every project source a target needs is
# compiled once with -fsanitize=fuzzer-no-link,address,undefined into
# build-fuzz/obj/, and each target links those objects with
# -fsanitize=fuzzer.  Instrumenting the project sources (not only the
# harnesses) is what gives libFuzzer coverage feedback inside the decoders,
# the loader and the parsers.  System libraries (libjpeg, libpng, cJSON,
# libcsv, SQLite, libmicrohttpd) are the Debian builds, uninstrumented:
# their crashes still abort under ASan, but coverage stops at their edge.
#
# Usage: fuzz/build.sh [builddir]     (default build-fuzz; incremental via make -j)
# Needs clang-14 and libclang-rt-14-dev (scripts/setup installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-build-fuzz}
mkdir -p "$out/obj" "$out/gen"

CC=${CC:-clang}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
# -Wno-unused-command-line-argument: clang warns about -lstb-style flags.
CFLAGS="-g -O1 -std=c17 -D_GNU_SOURCE $SAN -fno-omit-frame-pointer -Wall -Wextra -Werror \
 -Iinclude -Iindex -Isrc/server -Itests/image $(pkg-config --cflags libpng16 libcjson stb)"
LIBS="$(pkg-config --libs libjpeg libpng16 libcjson sqlite3 libmicrohttpd nettle stb) -lcsv -lm -lpthread"

# Storefront assets (routes.c serves them), generated as meson does.
if [ ! -x "$out/gen/embed_assets" ] || [ src/server/tools/embed_assets.c -nt "$out/gen/embed_assets" ]; then
  cc -O1 -o "$out/gen/embed_assets" src/server/tools/embed_assets.c
fi
"$out/gen/embed_assets" "$out/gen/www_assets.c" \
  / 'text/html; charset=utf-8' src/server/www/index.html \
  /app.js 'text/javascript; charset=utf-8' src/server/www/app.js \
  /style.css 'text/css; charset=utf-8' src/server/www/style.css

IMAGE="src/image/sniff.c src/image/decode.c src/image/decode_jpeg.c src/image/decode_png.c
       src/image/resize.c src/image/normalize.c src/image/quality.c"
COLOUR="src/embed/histogram.c"
INDEX="$(ls index/*.c | tr '\n' ' ')"
CATALOG="src/catalog/store.c src/catalog/filter.c src/catalog/import.c src/catalog/generation.c
         src/catalog/hash.c"
SERVER="src/server/http.c src/server/routes.c src/server/errors.c src/server/json.c src/server/auth.c
        src/server/ratelimit.c src/server/metrics.c src/server/validate.c src/server/config.c
        $out/gen/www_assets.c"
GEN="tests/image/gen.c"

# Compile one source to an object (instrumented for coverage, not linked
# with the fuzzer main).  Rebuild when the source or any header is newer.
objs=()
compile() {
  local src=$1 extra=${2:-}
  local o="$out/obj/$(echo "$src" | tr '/' '_' | sed 's/\.c$/.o/')"
  local newest
  newest=$(ls -t "$src" include/lookalike/*.h index/*.h src/*/p*.h fuzz/*.h 2>/dev/null | head -1)
  if [ ! -f "$o" ] || [ "$newest" -nt "$o" ] || [ "$0" -nt "$o" ]; then
    echo "  CC $src"
    # shellcheck disable=SC2086
    $CC $CFLAGS $extra -fsanitize=fuzzer-no-link -c "$src" -o "$o" &
  fi
  objs+=("$o")
}
objs_of() { objs=(); for s in "$@"; do compile "$s"; done; wait; }

# Each target: its harness + the modules it reaches.
build_target() {
  local name=$1; shift
  objs_of "$@" "fuzz/$name.c"
  echo "  LD $out/$name"
  # shellcheck disable=SC2086
  $CC $CFLAGS -fsanitize=fuzzer -o "$out/$name" "${objs[@]}" $LIBS
}

build_target fuzz_image_decode $IMAGE $COLOUR
build_target fuzz_index_load $INDEX
build_target fuzz_import_csv $IMAGE $CATALOG fuzz/catalog_common.c
build_target fuzz_import_jsonl $IMAGE $CATALOG fuzz/catalog_common.c
build_target fuzz_http_json $SERVER
build_target fuzz_multipart $SERVER $IMAGE

# Seed generator (plain program: no fuzzer main).
objs_of $IMAGE $INDEX $GEN
# shellcheck disable=SC2086
$CC $CFLAGS -o "$out/gen_seeds" fuzz/gen_seeds.c "${objs[@]}" $LIBS
echo "fuzz: targets in $out/"

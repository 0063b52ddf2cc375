#!/usr/bin/env bash
# The docs book (docs/): the CLI reference generated from the built `kedaform`, an mdBook build
# into the target dir, and a check of every link inside it. mdBook comes from crates.io, built
# once into the cache and keyed on its version.
#   scripts/docs.sh
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
MDBOOK_VERSION=0.5.4
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
tools=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/tools/mdbook-$MDBOOK_VERSION
if [ ! -x "$tools/bin/mdbook" ]; then
  echo "building mdBook $MDBOOK_VERSION from crates.io into $tools (first time only)"
  cargo install --quiet mdbook --version "$MDBOOK_VERSION" --locked --root "$tools" \
    --no-default-features --features search
fi
cargo build --quiet --locked -p kedaform-cli
python3 scripts/docs/cli_reference.py "$TARGET/debug/kedaform" docs/src/reference/cli.md
rm -rf "$TARGET/book"
"$tools/bin/mdbook" build docs --dest-dir "$TARGET/book"
python3 scripts/docs/linkcheck.py "$TARGET/book"
echo "the book: $TARGET/book/index.html"

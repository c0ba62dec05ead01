#!/usr/bin/env bash
# Public-domain sample photos for the app and the screenshots, from Debian's archive,
# into the ignored .cache/samples/ (no photo is kept in the repository):
#  - citrus-fruits.jpg: US Department of Agriculture, public domain
#    (palapeli-data: /usr/share/palapeli/collection/citrus-fruits.desktop says so);
#  - kites-bw.png: Scribus newsletter template by Riku Leino, placed in the public
#    domain by its author (scribus-template's copyright file).
# The app lists them (with the default model's bus.jpg and zidane.jpg) when present.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/samples
mkdir -p "$dest" .cache/deb
fetch() {  # package, path inside it, name under .cache/samples
  local package=$1 path=$2 name=$3
  [ -f "$dest/$name" ] && return 0
  if ! ls .cache/deb/"${package}"_*.deb >/dev/null 2>&1; then
    (cd .cache/deb && apt-get download "$package" >/dev/null)
  fi
  local tmp
  tmp=$(mktemp -d)
  dpkg -x .cache/deb/"${package}"_*.deb "$tmp"
  cp "$tmp/$path" "$dest/$name"
  rm -rf "$tmp"
}
fetch palapeli-data usr/share/palapeli/collection/citrus-fruits.jpg citrus-fruits.jpg
fetch scribus-template usr/share/scribus/templates/nl1-bw/kites-bw.png kites-bw.png
ls "$dest"

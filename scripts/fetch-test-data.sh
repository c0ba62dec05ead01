#!/usr/bin/env bash
# Reference cfgs for the tests (yolov3, yolov3-tiny, yolov3-spp) from Debian's
# `darknet` package, unpacked under .cache/ (ignored). Needs apt (Debian/Ubuntu).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.cache/darknet
if [ -f "$dest/usr/share/darknet/cfg/yolov3.cfg" ]; then exit 0; fi
mkdir -p .cache/deb
if ! (cd .cache/deb && apt-get download darknet >/dev/null 2>&1); then
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >/dev/null; fi
  (cd .cache/deb && apt-get download darknet >/dev/null)
fi
dpkg -x .cache/deb/darknet_*.deb "$dest"
test -f "$dest/usr/share/darknet/cfg/yolov3.cfg"

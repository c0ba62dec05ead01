#!/usr/bin/env bash
# What the tests need beyond Python packages, from Debian's archive:
#  - reference cfgs (yolov3, yolov3-tiny, yolov3-spp) from the `darknet` package,
#    unpacked under .cache/darknet (ignored);
#  - the `chromium` browser for the real-browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "scripts/test-deps.sh: need root to run: $*" >&2; return 1; fi; }
# Wait (up to 10 min) for another apt/dpkg process to release its lock instead of
# failing at once.
APT_WAIT=(-o DPkg::Lock::Timeout=600)
updated=0
apt_update() { if [ "$updated" = 0 ]; then as_root apt-get "${APT_WAIT[@]}" update -qq >/dev/null; updated=1; fi; }

dest=.cache/darknet
if [ ! -f "$dest/usr/share/darknet/cfg/yolov3.cfg" ]; then
  mkdir -p .cache/deb
  if ! (cd .cache/deb && apt-get download darknet >/dev/null 2>&1); then
    apt_update
    (cd .cache/deb && apt-get download darknet >/dev/null)
  fi
  dpkg -x .cache/deb/darknet_*.deb "$dest"
  test -f "$dest/usr/share/darknet/cfg/yolov3.cfg"
fi

if [ ! -x /usr/bin/chromium ]; then
  apt_update
  DEBIAN_FRONTEND=noninteractive as_root apt-get "${APT_WAIT[@]}" install -y -qq chromium >/dev/null
fi

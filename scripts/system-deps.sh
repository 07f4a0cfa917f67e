#!/usr/bin/env bash
# Installs the shared libraries that the gmsh wheel and offscreen VTK rendering load
# (and headless Chromium for the HTML-view test),
# when they are missing and we may use apt-get (root on Debian/Ubuntu). Idempotent.
set -u
need=()
check() { ldconfig -p 2>/dev/null | grep -q "$1" || need+=("$2"); }
check libGLU.so.1 libglu1-mesa
check libXcursor.so.1 libxcursor1
check libXft.so.2 libxft2
check libXinerama.so.1 libxinerama1
check libgomp.so.1 libgomp1
check libEGL.so.1 libegl1
check libEGL_mesa.so.0 libegl-mesa0
check libgbm.so.1 libgbm1
check libOSMesa.so libosmesa6
check libGL.so.1 libgl1
[ -e /usr/lib/x86_64-linux-gnu/dri/swrast_dri.so ] || [ -e /usr/lib/aarch64-linux-gnu/dri/swrast_dri.so ] || need+=(libgl1-mesa-dri)
# headless Chromium + its WebDriver: the test that opens the interactive scene.html offline
# (skipped when absent; VTA_SKIP_BROWSER=1 leaves them out)
if [ "${VTA_SKIP_BROWSER:-0}" != 1 ]; then
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
  command -v chromedriver >/dev/null || need+=(chromium-driver)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system libraries: ${need[*]}" >&2
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "warning: missing system libraries (${need[*]}); install them with your package manager" >&2
fi
exit 0

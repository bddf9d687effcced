#!/usr/bin/env bash
# Installs what bytelm needs from Debian 12's packages (only those missing), then configures and builds into build/.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in g++ cmake make libgtest-dev libopenblas-openmp-dev xz-utils; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$(nproc)"

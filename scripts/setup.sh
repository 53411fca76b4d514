#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the main job need.
# Non-interactive and idempotent: packages already present are skipped by apt.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git
  libopenblas-dev libopenblas-openmp-dev libkissfft-dev libeigen3-dev nlohmann-json3-dev
  libtomlplusplus-dev libcli11-dev libfmt-dev libgtest-dev libbenchmark-dev
  libpcre2-dev libicu-dev zlib1g-dev
  dataset-fashion-mnist
  python3 python3-numpy python3-torch
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

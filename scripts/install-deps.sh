#!/usr/bin/env bash
# Installs every build, test and run dependency of cityloop from Debian's archive.
# Idempotent: installs only what is missing, and does nothing when all is present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git python3 python3-yaml
  librdkafka-dev librocksdb-dev libsimdjson-dev nlohmann-json3-dev
  libyaml-cpp-dev libcli11-dev libboost-dev libspdlog-dev libfmt-dev libssl-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev kcat
  # OpenCV 4.6, only the modules detect/camera/ uses (the libopencv-dev
  # meta-package would pull in VTK, Qt and FFmpeg for nothing).
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libopencv-video-dev libopencv-objdetect-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

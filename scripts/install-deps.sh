#!/usr/bin/env bash
# Installs every build, test and run dependency of cityloop from Debian's archive.
# Idempotent: installs only what is missing, and does nothing when all is present.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git python3 python3-yaml
  librdkafka-dev librocksdb-dev libsimdjson-dev nlohmann-json3-dev
  libyaml-cpp-dev libcli11-dev libboost-dev libspdlog-dev libfmt-dev libssl-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev kcat
  # make fuzz: clang and its runtimes (libFuzzer, ASan, UBSan).
  clang libclang-rt-14-dev
  # OpenCV 4.6, only the modules detect/camera/ uses (the libopencv-dev
  # meta-package would pull in VTK, Qt and FFmpeg for nothing).
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev
  libopencv-video-dev libopencv-objdetect-dev
  # The web console's browser test (tests/e2e/): headless Chromium, a CJK font
  # for its screenshots of the Chinese UI, and npm (for playwright-core,
  # installed by scripts/install-web-deps.sh).
  chromium fonts-wqy-microhei npm
)

missing=()
for p in "${PACKAGES[@]}"; do
  # npm also comes with other Node.js builds (NodeSource's nodejs provides and
  # conflicts with Debian's npm): any npm on the PATH will do.
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# npm packages of the web console's test (npm ci only when needed).
"$(dirname "$0")/install-web-deps.sh"

#!/usr/bin/env bash
# Set up spikeinterface-vqcompress on a fresh Debian/Ubuntu machine with Python >= 3.10.
# Idempotent: re-running it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# WavPack's numcodecs binding builds against Debian's libwavpack; Chromium renders the study report
# headless (`vqcompress report --screenshot` and its test).
if ! dpkg -s libwavpack-dev >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends wavpack libwavpack-dev chromium >/dev/null
fi

# torch first, pinned, so that the CPU build is used (an unpinned torch pulls GBs of CUDA packages).
if ! python -c "import torch" >/dev/null 2>&1; then
  python -m pip install -q torch==2.13.0
fi
python -m pip install -q -e ".[test]"
# Compile the numba kernels now, at install, so that the first compress starts at once (the broadband
# codec's take a few minutes of CPU on a fresh machine, once: numba caches them next to the package).
python -c "from spikeinterface_vqcompress.core.kernels import compile_kernels; print(f'numba kernels ready ({compile_kernels():.0f} s)')"
python -c "import spikeinterface_vqcompress as vq; print('spikeinterface-vqcompress', vq.__version__, 'ready; codecs:', ', '.join(vq.available_codecs()))"

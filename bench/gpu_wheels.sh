#!/usr/bin/env bash
# Wheels the lent GPU machine's python3 (3.12, OpenCV 5, no imbalanced-learn) needs for
# bench/gpu_check.sh, downloaded here into .whl/ (ignored by git; carried by the device tool).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
for spec in "opencv-python-headless==4.12.0.88" "imbalanced-learn==0.14.2" "sklearn-compat==0.1.5"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$spec"
done
ls -la .whl

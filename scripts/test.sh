#!/usr/bin/env bash
# Builds bytelm and runs the whole test suite (CUDA tests skip themselves without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ctest --test-dir build --output-on-failure -j "$(nproc)"

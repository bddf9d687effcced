#!/usr/bin/env bash
# The first run: build, train the demo model on the bundled Shakespeare (about 5 minutes on 2 cores),
# report its validation bits per byte, and sample from it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rm -rf runs/demo
./build/bytelm train --preset ssm-demo --data data/tinyshakespeare.txt --out runs/demo
echo "sample:"
./build/bytelm generate --ckpt runs/demo --prompt $'ROMEO:\n' --bytes 400 --temperature 0.8
echo

#!/usr/bin/env bash
# The main job: install what is needed, build, and run the demo (a
# dma-test server process driven through the client library).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh build
exec ./build/tools/vfiokit demo "$@"

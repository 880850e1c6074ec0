#!/usr/bin/env bash
# `make demo`: local production + test Postgres, load, sync under writes, side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./cmd/understudy-demo

#!/usr/bin/env bash
# The main job on the embedded sample data: set everything up, then decode the sample hosts,
# check every CPU definition against every host (the matrix) and, when the Nova plugin is
# installed, run the scheduling scenario through Nova's real filter and weigher handlers.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh >/dev/null
.venv/bin/arm-cpu-filter matrix
if .venv/bin/arm-cpu-filter demo --help >/dev/null 2>&1; then
  echo
  .venv/bin/arm-cpu-filter demo
fi

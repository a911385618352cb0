#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: set everything up (tools/bootstrap.sh,
# idempotent), build the real-KVM lab artefacts (cached), then lint and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
if [ -x tools/lab/build.sh ]; then
  tools/lab/build.sh || echo "run-tests: lab build failed; the lab tests will report why" >&2
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -ra "$@"

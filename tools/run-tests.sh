#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: set everything up (tools/bootstrap.sh,
# idempotent), build the real-KVM lab artefacts (cached), then lint and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
# real-KVM lab artefacts (kernels, initramfs, QEMU 10), cached in .cache/lab
.venv/bin/python -m tools.lab.build || echo "run-tests: lab build failed; the lab tests will say why" >&2
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -ra "$@"

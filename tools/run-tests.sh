#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: set everything up (tools/bootstrap.sh,
# idempotent), build the real-KVM lab artefacts (cached), then lint and run every test: two pytest
# processes, the suite and then the whole-Nova functional tests.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/bootstrap.sh
# real-KVM lab artefacts (kernels, initramfs, QEMU 10), cached in .cache/lab
.venv/bin/python -m tools.lab.build || echo "run-tests: lab build failed; the lab tests will say why" >&2
# the VMM (arm64 QEMU 10.0 userland) and the 6.1 kernel of the migration lab, cached in .cache/migrlab
.venv/bin/python -m tools.lab.vmm || echo "run-tests: VMM build failed; the migration lab tests will say why" >&2
.venv/bin/ruff check .
# the real-KVM lab boots 18 guests for the ID registers and 11 with the VMM for migrations
# (about 10 minutes on 2 cores): part of the suite in CI
# ARM_CPU_FILTER_INSTALL: a fresh venv with the plain install (no extras), every command run in it
ARM_CPU_FILTER_LAB=1 ARM_CPU_FILTER_INSTALL=1 .venv/bin/python -m pytest -ra "$@"
# a whole Nova (API, conductor, scheduler, fake computes, Placement's app) in a pytest process of
# its own: Nova's test fixtures patch the process in ways the in-process scheduler tests do not survive
ARM_CPU_FILTER_FUNCTIONAL=1 exec .venv/bin/python -m pytest -ra tests/functional

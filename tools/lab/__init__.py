"""Real-KVM lab: stock Debian arm64 kernels with KVM, booted under QEMU-TCG with emulated EL2.

Run from the repository root: ``python3 -m tools.lab.build`` (cached artefacts),
``python3 -m tools.lab.fixtures`` (Phase A snapshots), ``python3 -m tools.lab.corpus`` (Phase B).
"""

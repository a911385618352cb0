"""Errors of the KVM adapter: each says what to do next, because users meet them on the CLI."""

from __future__ import annotations

from arm_cpu_filter.errors import ArmCpuFilterError


class KvmError(ArmCpuFilterError):
    """/dev/kvm cannot be used to read or probe ID registers on this machine."""

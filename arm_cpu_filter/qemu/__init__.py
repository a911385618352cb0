"""QEMU adapter: CPU definitions as ``-cpu`` command-line options."""

from arm_cpu_filter.qemu.cmdline import cpu_option

__all__ = ["cpu_option"]

"""KVM adapter: read a HostSnapshot from /dev/kvm and ask KVM itself whether a definition fits.

Pure stdlib (os, fcntl, struct, array, errno, time): it must also run under Debian's
python3.11-minimal inside the lab's arm64 guests, which has no ctypes or mmap.
"""

from __future__ import annotations

from .errors import KvmError
from .probe import probe_definition
from .reader import read_snapshot

__all__ = ["KvmError", "probe_definition", "read_snapshot"]

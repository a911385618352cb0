"""What the agent needs from its host, checked up front so that a missing permission is one
clear line instead of an ioctl error: read-write ``/dev/kvm`` (through the ``kvm`` group), a
read-only libvirt connection (libvirt's read-only socket, open to every local user by default),
and write access to its store and provider-config directory.  Nothing else: it runs as an
ordinary user in the ``kvm`` group, never as root (docs/agent-privileges.rst)."""

from __future__ import annotations

import grp
import os
import pwd
import stat

from arm_cpu_filter.errors import ArmCpuFilterError

KVM_DEVICE = "/dev/kvm"
KVM_GROUP = "kvm"


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_kvm_access(device: str = KVM_DEVICE) -> None:
    """Raise an ArmCpuFilterError naming the permission problem and the kvm group when this
    process cannot open ``device`` read-write (a missing device is the KVM reader's to explain)."""
    if not os.path.exists(device) or os.access(device, os.R_OK | os.W_OK):
        return
    st = os.stat(device)
    user, group, mode = _user(os.geteuid()), _group(st.st_gid), stat.S_IMODE(st.st_mode)
    groups = sorted({_group(g) for g in os.getgroups()} | {_group(os.getegid())})
    steps = []
    if group != KVM_GROUP or mode & 0o060 != 0o060:
        steps.append(f"give {device} to group {KVM_GROUP} with mode 0660 (the udev rule of the distribution's "
                     "qemu/kvm packages does this)")
    if KVM_GROUP not in groups:
        steps.append(f"add {user} to the {KVM_GROUP} group (usermod -aG {KVM_GROUP} {user}) and restart the agent")
    raise ArmCpuFilterError(
        f"permission denied: the agent runs as {user} (groups: {', '.join(groups)}) and cannot open {device} "
        f"read-write ({_user(st.st_uid)}:{group}, mode {mode:04o}); it needs the {KVM_GROUP} group, not root: "
        + "; ".join(steps or [f"check {device}'s ACLs and security labels"])
    )


def secret_exposures(config_files: list[str], password_from_command_line: bool) -> list[str]:
    """Warnings for a store password other users can read: a world-readable config file holding
    it, or a ``--store-url`` on the command line (visible in every user's process list)."""
    if password_from_command_line:
        return ["--store-url carries a password, which every local user can read in the process list: "
                "put store_url in a config file of mode 0640 instead"]
    out = []
    for path in config_files:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue
        if mode & 0o004:
            out.append(f"{path} is world-readable (mode {mode:04o}) and the store URL carries a password: "
                       f"chmod o-r {path}")
    return out

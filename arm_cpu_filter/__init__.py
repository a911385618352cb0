"""arm-cpu-filter: safe live migration of ARM64 KVM guests in libvirt + OpenStack Nova clouds.

Layers (each imports only from the ones before it): ``table`` -> ``snapshot`` ->
``properties`` -> ``models`` -> ``engine`` -> adapters (``kvm``, ``libvirt``, ``qemu``,
``scheduler``, ``store``, ``agent``, ``cli``).
"""

__version__ = "0.1.0"

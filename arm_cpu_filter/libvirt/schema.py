"""RelaxNG validation: libvirt's installed schemas and arm-cpu-filter's extension grammar.

libvirt's schemas are not shipped with this package: they are the ones installed with
libvirt (``$ARM_CPU_FILTER_LIBVIRT_SCHEMAS``, else libvirt's default data directory).  The
extension grammar (``schemas/domaincaps-arm-cpu-filter.rng``) includes libvirt's
``domaincaps.rng``; ``extension_schema()`` points that include at the installed copy.
"""

from __future__ import annotations

import os
from copy import deepcopy
from functools import cache
from pathlib import Path

from lxml import etree

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.libvirt import NS
from arm_cpu_filter.libvirt.xmlsafe import read

EXTENSION = Path(__file__).with_name("schemas") / "domaincaps-arm-cpu-filter.rng"
_RNG = "{http://relaxng.org/ns/structure/1.0}"
_SCHEMA_BYTES = 1 << 20  # domaincommon.rng is ~240 KiB


def libvirt_schema_dir() -> Path:
    """Where libvirt installed its RelaxNG schemas (``$ARM_CPU_FILTER_LIBVIRT_SCHEMAS`` wins)."""
    return Path(os.environ.get("ARM_CPU_FILTER_LIBVIRT_SCHEMAS") or "/usr/share/libvirt/schemas")


def _file(name: str) -> Path:
    path = libvirt_schema_dir() / name
    if not path.is_file():
        raise InputError(f"libvirt schema {path}: not found (is libvirt installed? "
                         "set ARM_CPU_FILTER_LIBVIRT_SCHEMAS to its schema directory)")
    return path


def _compile(root: etree._Element, what: str) -> etree.RelaxNG:
    try:
        return etree.RelaxNG(root)
    except etree.RelaxNGParseError as exc:
        raise InputError(f"{what}: not a usable RelaxNG grammar ({str(exc).splitlines()[0]})") from None


@cache
def libvirt_schema(name: str = "domaincaps") -> etree.RelaxNG:
    """libvirt's installed grammar ``<name>.rng`` (``domaincaps``, ``domain``, ``cpu``...)."""
    path = _file(f"{name}.rng")
    root = read(path, f"libvirt schema {path}", max_bytes=_SCHEMA_BYTES)
    return _compile(root, f"libvirt schema {path}")


@cache
def extension_schema() -> etree.RelaxNG:
    """The extension grammar, including the installed libvirt ``domaincaps.rng``."""
    root = read(EXTENSION, f"schema {EXTENSION.name}")
    include = root.find(f"{_RNG}include")
    assert include is not None, "the extension grammar includes domaincaps.rng"
    include.set("href", _file(include.get("href")).as_uri())
    return _compile(root, f"schema {EXTENSION.name}")


def errors(schema: etree.RelaxNG, root: etree._Element) -> list[str]:
    """Validation errors (empty: valid), one line each."""
    if schema.validate(root):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def strip_extensions(root: etree._Element) -> etree._Element:
    """A copy of a document without arm-cpu-filter's elements and attributes: what libvirt's
    schema sees."""
    copy = deepcopy(root)
    for el in copy.iter():
        for name in [a for a in el.attrib if a.startswith(f"{{{NS}}}")]:
            del el.attrib[name]
    for el in list(copy.iter(f"{{{NS}}}*")):
        parent = el.getparent()
        parent.remove(el)
        if len(parent) == 0 and not (parent.text or "").strip():
            parent.text = None
    etree.cleanup_namespaces(copy)
    etree.indent(copy, space="  ")
    return copy

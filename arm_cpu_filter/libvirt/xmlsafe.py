"""Hardened XML reading: every XML document the project reads goes through ``parse``.

libvirt documents never use a DTD, so any DOCTYPE or entity declaration is refused outright
(no billion laughs, no external entities, no DTD fetch), and so is XInclude; the parser also loads nothing from
the network or disk, keeps libxml2's tree limits (``huge_tree=False``) and the input is
size-limited before parsing.  Every failure is an ``InputError`` naming the document.
"""

from __future__ import annotations

import os

from lxml import etree

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.snapshot.files import read_bytes

#: libvirt's largest domain capabilities (x86, all devices) are about 60 KiB; guest XML less.
MAX_BYTES = 2 << 20

_REFUSED = (b"<!DOCTYPE", b"<!ENTITY")
#: XInclude elements (never processed here, but refused so no later step can act on them).
_XINCLUDE = ("{http://www.w3.org/2001/XInclude}*", "{http://www.w3.org/2003/XInclude}*")


def _parser(remove_blank_text: bool) -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=remove_blank_text,
        remove_pis=True,
        collect_ids=False,
    )


def parse(data: str | bytes, what: str = "XML document", *, max_bytes: int = MAX_BYTES,
          remove_blank_text: bool = False, base_url: str | None = None) -> etree._Element:
    """The root element of ``data``; ``InputError`` for anything unsafe or malformed.
    ``base_url``: where relative references (RelaxNG includes) resolve from."""
    try:
        raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    except UnicodeEncodeError as exc:  # lone surrogates: text no file or libvirt can hold
        raise InputError(f"{what}: not valid Unicode text ({exc.reason} at character {exc.start})") from None
    if len(raw) > max_bytes:
        raise InputError(f"{what}: larger than {max_bytes} bytes ({len(raw)}); refusing to parse")
    for marker in _REFUSED:
        if marker in raw:
            raise InputError(f"{what}: contains {marker.decode()}; DTDs and entity declarations are refused")
    try:
        root = etree.fromstring(raw, _parser(remove_blank_text), base_url=base_url)
    except etree.XMLSyntaxError as exc:
        raise InputError(f"{what}: not well-formed XML ({str(exc).splitlines()[0]})") from None
    if root is None:  # pragma: no cover - lxml raises for empty input
        raise InputError(f"{what}: empty document")
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        # Reached only by encodings the byte scan above cannot see (UTF-16...).
        raise InputError(f"{what}: has a DOCTYPE; DTDs and entity declarations are refused")
    if next(root.iter(*_XINCLUDE), None) is not None:
        raise InputError(f"{what}: contains an XInclude element; XInclude is refused")
    return root


def read(path: str | os.PathLike[str], what: str | None = None, *, max_bytes: int = MAX_BYTES,
         remove_blank_text: bool = False) -> etree._Element:
    """``parse`` a file, reading at most ``max_bytes`` + 1 bytes of it."""
    label = what or f"XML file {path}"
    data = read_bytes(path, label, max_bytes)
    return parse(data, label, max_bytes=max_bytes, remove_blank_text=remove_blank_text, base_url=str(path))

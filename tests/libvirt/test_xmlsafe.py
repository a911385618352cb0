"""Hardened XML reading: hostile documents are refused with one clear InputError."""

from __future__ import annotations

import pytest

from arm_cpu_filter.errors import InputError
from arm_cpu_filter.libvirt import xmlsafe

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<domainCapabilities><arch>&lol4;</arch></domainCapabilities>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<domainCapabilities><arch>&secret;</arch></domainCapabilities>"""

DTD_FETCH = """<?xml version="1.0"?>
<!DOCTYPE domainCapabilities SYSTEM "http://127.0.0.1:9/evil.dtd">
<domainCapabilities><arch>aarch64</arch></domainCapabilities>"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<d/>"""


@pytest.mark.parametrize("doc, word", [
    (BILLION_LAUGHS, "<!DOCTYPE"),
    (EXTERNAL_ENTITY, "<!DOCTYPE"),
    (DTD_FETCH, "<!DOCTYPE"),
    (PARAMETER_ENTITY, "<!DOCTYPE"),
    ('<d><!ENTITY x "y"></d>', "<!ENTITY"),
])
def test_dtds_and_entities_refused(doc, word):
    with pytest.raises(InputError) as err:
        xmlsafe.parse(doc, "caps.xml")
    assert str(err.value) == f"caps.xml: contains {word}; DTDs and entity declarations are refused"


def test_utf16_doctype_refused_after_parse_without_expanding():
    """An encoding the byte scan cannot read still gets no DTD: the parsed tree is checked."""
    doc = EXTERNAL_ENTITY.replace('version="1.0"', 'version="1.0" encoding="UTF-16"').encode("utf-16")
    with pytest.raises(InputError, match="^caps.xml: has a DOCTYPE; DTDs and entity declarations are refused$"):
        xmlsafe.parse(doc, "caps.xml")


def test_oversized_refused_before_parsing():
    doc = "<d>" + "x" * xmlsafe.MAX_BYTES + "</d>"
    with pytest.raises(InputError, match=rf"^big.xml: larger than {xmlsafe.MAX_BYTES} bytes \(\d+\); refusing"):
        xmlsafe.parse(doc, "big.xml")
    assert xmlsafe.parse("<d>" + "x" * 100 + "</d>", max_bytes=200).text == "x" * 100
    with pytest.raises(InputError, match="larger than 50 bytes"):
        xmlsafe.parse("<d>" + "x" * 100 + "</d>", max_bytes=50)


def test_deep_nesting_refused_by_tree_limits():
    doc = "<a>" * 300 + "</a>" * 300  # libxml2 without huge_tree stops at depth 256
    with pytest.raises(InputError, match="^deep.xml: not well-formed XML"):
        xmlsafe.parse(doc, "deep.xml")


@pytest.mark.parametrize("doc", ["", "<d>", "<a></b>", "not xml", "<d>&undefined;</d>"])
def test_malformed_is_one_line_input_error(doc):
    with pytest.raises(InputError) as err:
        xmlsafe.parse(doc, "x.xml")
    assert str(err.value).startswith("x.xml: not well-formed XML (") and "\n" not in str(err.value)


def test_plain_documents_parse_with_predefined_and_character_references():
    root = xmlsafe.parse('<?xml version="1.0" encoding="UTF-8"?><d a="&lt;&#65;">&amp;x</d>')
    assert (root.tag, root.get("a"), root.text) == ("d", "<A", "&x")


def test_read_file(tmp_path):
    (tmp_path / "ok.xml").write_bytes(b"<arch>aarch64</arch>")
    assert xmlsafe.read(tmp_path / "ok.xml").text == "aarch64"
    with pytest.raises(InputError, match=r"^XML file .*absent.xml: no such file$"):
        xmlsafe.read(tmp_path / "absent.xml")
    (tmp_path / "bad.xml").write_text(EXTERNAL_ENTITY)
    with pytest.raises(InputError, match=r"bad.xml: contains <!DOCTYPE"):
        xmlsafe.read(tmp_path / "bad.xml")
    (tmp_path / "big.xml").write_bytes(b"<d>" + b"x" * 1000 + b"</d>")
    with pytest.raises(InputError, match="larger than 100 bytes"):
        xmlsafe.read(tmp_path / "big.xml", max_bytes=100)

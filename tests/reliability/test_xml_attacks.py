"""XML attacks against every place the project reads XML -- guest CPU XML, the libvirt document
merged by ``domcapabilities --connect`` (library call) and ``--merge FILE`` (command line), the
domain XML the agent reads, libvirt's RelaxNG schemas, ``xmlsafe.read`` of a file: billion
laughs, quadratic blowup, external entities (``file://`` and HTTP), external DTD and parameter
entities, XInclude, a DOCTYPE hidden in UTF-16, oversized and very deep documents.

Each is refused with an InputError that names the document and the problem, nothing is read
from the local HTTP server the test runs (it records every connection), and no secret leaks.
Each entry point first accepts the same document without the attack, so the refusal is the
attack's.  (``tests/libvirt/test_xmlsafe.py`` covers ``xmlsafe.parse`` on its own.)"""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from lxml import etree

from arm_cpu_filter.agent.domains import parse_domain
from arm_cpu_filter.cli import main
from arm_cpu_filter.errors import InputError
from arm_cpu_filter.libvirt import domain_capabilities, schema, xmlsafe
from arm_cpu_filter.libvirt.guest import guest_cpu_spec
from arm_cpu_filter.models import realize
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.testing.fuzz.xml_targets import SEEDS

SECRET = "acf-secret-3f9d1c"
XI = "http://www.w3.org/2001/XInclude"


@pytest.fixture
def server():
    """A local HTTP server that records every connection and request made to it."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            hits.append(f"GET {self.path}")
            body = b'<!ENTITY e "fetched">'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    class Recording(ThreadingHTTPServer):
        def verify_request(self, request, client_address) -> bool:  # noqa: ANN001
            hits.append(f"connect {client_address[0]}")
            return True

    srv = Recording(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", hits
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def secret(tmp_path) -> str:
    path = tmp_path / "secret.txt"
    path.write_text(SECRET)
    return path.as_uri()


# -- the entry points ------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    name: str
    #: the valid document, with @DECL@ (XML declaration), @PROLOG@ (before the root) and @X@ (in a text node)
    template: Callable[[], str]
    #: "bytes", "text" (a str, as libvirt-python hands it over) or "file" (read as UTF-8 by the command)
    feed: str
    #: reads the document (bytes or str per ``feed``) in ``tmp``; raises InputError to refuse
    read: Callable[[bytes | str, Path], object]
    #: how the refusal names the document (a prefix of the message)
    label: Callable[[Path], str]


GUEST = "@DECL@@PROLOG@<cpu mode='custom' match='exact'><model fallback='forbid'>@X@grace-v1</model></cpu>"
DOMAIN = ("@DECL@@PROLOG@<domain type='kvm'><name>@X@instance-0000002a</name>"
          "<uuid>6f1c4e3a-93a5-4d0b-8a52-5b0f7a1d2c33</uuid><metadata>"
          "<nova:instance xmlns:nova='http://openstack.org/xmlns/libvirt/nova/1.1'/></metadata>"
          "<cpu mode='host-passthrough'/></domain>")


def _domcaps_template() -> str:
    text = (SEEDS / "libvirt-qemu-aarch64.xml").read_text()
    comment, rest = text.split("\n", 1)
    assert "<machine>virt-7.2</machine>" in rest
    return "@DECL@" + comment + "\n@PROLOG@" + rest.replace("<machine>virt-7.2</machine>", "<machine>@X@virt-7.2</machine>")


def _schema_template() -> str:
    text = (schema.libvirt_schema_dir() / "domaincaps.rng").read_text()
    decl, rest = text.split("\n", 1)
    assert decl.startswith("<?xml") and "<grammar " in rest
    head, grammar = rest.split("<grammar ", 1)
    tag, body = grammar.split(">", 1)
    return f"@DECL@{head}@PROLOG@<grammar {tag}><acfx:note xmlns:acfx='urn:acf-test'>@X@</acfx:note>{body}"


MODELS = {"grace-v1": realize("grace-v1")}


def _merge(doc: bytes | str, tmp: Path) -> object:
    return domain_capabilities(sample_host("graviton2"), MODELS, libvirt_xml=doc,
                               what="domain capabilities from test:///default")


def _cli_merge(doc: bytes | str, tmp: Path) -> object:
    path = tmp / "caps.xml"
    path.write_bytes(doc if isinstance(doc, bytes) else doc.encode())
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        status = main(["domcapabilities", "--host", "graviton2", "--merge", str(path)])
    if status == 0:
        return out.getvalue()
    lines = err.getvalue().splitlines()
    assert status == 2 and len(lines) == 1, (status, err.getvalue())
    prefix = "arm-cpu-filter domcapabilities: error: "
    assert lines[0].startswith(prefix)
    raise InputError(lines[0][len(prefix):])


def _schema(doc: bytes | str, tmp: Path) -> object:
    directory = tmp / "schemas"
    if not directory.exists():
        shutil.copytree(schema.libvirt_schema_dir(), directory)
    (directory / "domaincaps.rng").write_bytes(doc if isinstance(doc, bytes) else doc.encode())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARM_CPU_FILTER_LIBVIRT_SCHEMAS", str(directory))
        schema.libvirt_schema.cache_clear()
        try:
            return schema.libvirt_schema("domaincaps")
        finally:
            schema.libvirt_schema.cache_clear()


def _read(doc: bytes | str, tmp: Path) -> object:
    path = tmp / "doc.xml"
    path.write_bytes(doc if isinstance(doc, bytes) else doc.encode())
    return xmlsafe.read(path, "doc.xml")


ENTRIES = [
    Entry("guest", lambda: GUEST, "bytes", lambda doc, tmp: guest_cpu_spec(doc), lambda tmp: "guest CPU XML: "),
    Entry("connect-merge", _domcaps_template, "text", _merge,
          lambda tmp: "domain capabilities from test:///default: "),
    Entry("cli-merge", _domcaps_template, "file", _cli_merge, lambda tmp: f"domain capabilities {tmp / 'caps.xml'}: "),
    Entry("agent-domain", lambda: DOMAIN, "text", lambda doc, tmp: parse_domain(doc), lambda tmp: "libvirt domain XML: "),
    Entry("libvirt-schema", _schema_template, "bytes", _schema,
          lambda tmp: f"libvirt schema {tmp / 'schemas' / 'domaincaps.rng'}: "),
    Entry("xmlsafe-read", lambda: GUEST, "bytes", _read, lambda tmp: "doc.xml: "),
]


# -- the attacks -------------------------------------------------------------------------------
DOCTYPE = r"contains <!DOCTYPE; DTDs and entity declarations are refused$"


def _laughs() -> str:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return f"<!DOCTYPE d [{entities}]>"


def attacks(url: str, secret: str) -> dict[str, tuple[str, str, str, str]]:
    """name -> (XML declaration, prolog, text-node content, expected end of the message)."""
    external = f'<!DOCTYPE d [<!ENTITY e SYSTEM "{url}/entity.txt">]>'
    return {
        "billion laughs": ("", _laughs(), "&lol9;", DOCTYPE),
        "quadratic blowup": ("", f'<!DOCTYPE d [<!ENTITY a "{"A" * 50_000}">]>', "&a;" * 20_000, DOCTYPE),
        "external entity file://": ("", f'<!DOCTYPE d [<!ENTITY s SYSTEM "{secret}">]>', "&s;", DOCTYPE),
        "external entity http": ("", external, "&e;", DOCTYPE),
        "external DTD": ("", f'<!DOCTYPE d SYSTEM "{url}/evil.dtd">', "&e;", DOCTYPE),
        "parameter entity": ("", f'<!DOCTYPE d [<!ENTITY % p SYSTEM "{url}/p.dtd"> %p;]>', "&e;", DOCTYPE),
        "entity without DOCTYPE": ("", "", f'<!ENTITY e SYSTEM "{url}/bare.txt">', r"contains <!ENTITY; .*refused$"),
        "XInclude file://": ("", "", f"<xi:include xmlns:xi='{XI}' href='{secret}' parse='text'/>",
                             "contains an XInclude element; XInclude is refused$"),
        "XInclude http": ("", "", f"<xi:include xmlns:xi='{XI}' href='{url}/x.xml'/>",
                          "contains an XInclude element; XInclude is refused$"),
        "UTF-16 DOCTYPE": ('<?xml version="1.0" encoding="UTF-16"?>', external, "&e;", "utf-16"),
        "oversized": ("", "", "x" * (xmlsafe.MAX_BYTES + 1), r"larger than \d+ bytes"),
        "deep nesting": ("", "", "<a>" * 10_000 + "</a>" * 10_000, r"not well-formed XML \(Excessive depth in document"),
    }


def _document(entry: Entry, decl: str, prolog: str, x: str) -> bytes | str:
    text = entry.template().replace("@DECL@", decl).replace("@PROLOG@", prolog).replace("@X@", x)
    if entry.feed == "text":
        return text
    return text.encode("utf-16" if "UTF-16" in decl else "utf-8")


def _expected(entry: Entry, tail: str) -> str:
    """The UTF-16 document: read as bytes, the byte scan cannot see its DOCTYPE and the parsed tree
    is refused; as text it is plain Unicode and the scan sees it; the command reads UTF-8 only."""
    if tail != "utf-16":
        return tail
    return {"bytes": r"has a DOCTYPE; DTDs and entity declarations are refused$", "text": DOCTYPE,
            "file": "not UTF-8 text$"}[entry.feed]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entry_point_accepts_the_document_without_the_attack(entry, tmp_path):
    result = entry.read(_document(entry, "", "", ""), tmp_path)
    assert result is not None


@pytest.mark.parametrize("attack", list(attacks("http://x", "file:///x")))
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_attack_is_refused_and_nothing_is_fetched(entry, attack, server, secret, tmp_path):
    url, hits = server
    decl, prolog, x, tail = attacks(url, secret)[attack]
    with pytest.raises(InputError) as err:
        entry.read(_document(entry, decl, prolog, x), tmp_path)
    message = str(err.value)
    assert message.startswith(entry.label(tmp_path)), message
    assert re.search(_expected(entry, tail), message), message
    assert "\n" not in message and SECRET not in message and "fetched" not in message
    assert hits == [], f"{entry.name} contacted the server: {hits}"


def test_schema_include_from_the_network_is_not_fetched(server, tmp_path):
    """A RelaxNG <include> (not XInclude: the grammar's own) pointing at a server: the schema
    is refused as unusable and the server is never contacted."""
    url, hits = server
    doc = _schema_template().replace("@DECL@", '<?xml version="1.0"?>\n').replace("@PROLOG@", "").replace(
        "@X@", "").replace('<include href="basictypes.rng"/>', f'<include href="{url}/basictypes.rng"/>')
    with pytest.raises(InputError, match=r"domaincaps.rng: not a usable RelaxNG grammar \("):
        _schema(doc.encode(), tmp_path)
    assert hits == []


def test_the_attacks_are_live(server, secret, tmp_path):
    """Controls: the server records a fetch, and a parser without the hardening would leak the
    secret file through the external entity -- so the assertions above can fail."""
    url, hits = server
    with urllib.request.urlopen(f"{url}/control") as response:
        assert response.read() == b'<!ENTITY e "fetched">'
    assert hits == ["connect 127.0.0.1", "GET /control"]
    decl, prolog, x, _ = attacks(url, secret)["external entity file://"]
    doc = _document(ENTRIES[0], decl, prolog, x)
    unsafe = etree.XMLParser(resolve_entities=True, load_dtd=True, no_network=True)
    assert etree.fromstring(doc, unsafe).findtext("model") == SECRET + "grace-v1"


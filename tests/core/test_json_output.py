"""Every command with JSON output writes only JSON to stdout (redirected or piped, as here):
notes, warnings and "gives up" summaries go to stderr or into the JSON object.  And ``check``
takes one CPU: a MODEL and ``--definition`` together are an error, a positional file a definition."""

from __future__ import annotations

import json

import pytest

from arm_cpu_filter.cli import main
from arm_cpu_filter.samples import SAMPLE_DIR


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("argv, code", [
    (["baseline", "altra-7.3", "graviton2-7.3"], 0),  # text format: the definition itself
    (["baseline", "graviton2-7.3", "altra-7.3", "--json"], 0),
    (["baseline", "altra", "graviton2", "--format", "json"], 1),
    (["check", "grace-v1", "--host", "graviton4", "--json"], 1),
    (["check", str(SAMPLE_DIR / "graviton3.json"), "--host", "graviton3", "--format", "json"], 0),
    (["compare", "graviton3", "graviton4", "--json"], 0),
    (["expand", "neoverse-n1-v1"], 0),
    (["models", "--json"], 0),
    (["show", "grace-v1", "--json"], 0),
    (["supported", "--host", "graviton3", "--json"], 0),
    (["decode", "MIDR_EL1=0x413fd0c1", "--json"], 0),
    (["fields", "CTR_EL0", "--json"], 0),
    (["domcapabilities", "--host", "graviton3", "--json"], 0),
    (["snapshot", "--from-file", str(SAMPLE_DIR / "altra-7.3.json")], 0),
    (["migrate-check", "altra-v1", "--from", "altra-7.3", "--to", "graviton2-7.3", "--json"], 1),
])
def test_stdout_is_one_json_document(capsys, argv, code):
    got, out, _ = run(capsys, *argv)
    assert got == code
    json.loads(out)


def test_baseline_commentary_goes_to_stderr(capsys):
    code, out, err = run(capsys, "baseline", "altra-7.3", "graviton2-7.3")
    assert code == 0 and json.loads(out)["registers"]["REVIDR_EL1"] == "0x00000000000000c7"
    assert err.splitlines() == [
        "altra-7.3 gives up: cpu_revidr: 0x1c7 -> 0xc7",
        "graviton2-7.3 gives up: cpu_revidr: 0xff -> 0xc7, hw_prop_LoC: 1 -> 2, hw_prop_Ctype2: 0 -> 4, "
        "hw_prop_Ctype1: 4 -> 1, hw_prop_DIC: on -> off",
    ]
    # no definition: nothing on stdout, the conflicts on stderr
    code, out, err = run(capsys, "baseline", "altra", "graviton2")
    assert code == 1 and out == ""
    assert err.splitlines()[0] == "no CPU definition is accepted by every host:"
    assert "REVIDR_EL1: differs and cannot be changed on every host" in err


def test_baseline_output_is_the_same_in_either_order(capsys):
    _, forward, _ = run(capsys, "baseline", "altra-7.3", "graviton2-7.3", "--json")
    _, reverse, _ = run(capsys, "baseline", "graviton2-7.3", "altra-7.3", "--json")
    assert forward == reverse


def test_check_with_a_model_and_a_definition_is_two_cpus(capsys, tmp_path):
    definition = tmp_path / "def.json"
    definition.write_text(run(capsys, "expand", "grace-v1")[1])
    code, out, err = run(capsys, "check", "grace-v1", "--definition", str(definition), "--host", "grace")
    assert code == 2 and out == ""
    assert err == f"arm-cpu-filter check: error: two CPUs given (grace-v1 and --definition {definition}): give one\n"


def test_check_reads_a_positional_file_as_a_definition(capsys, tmp_path, monkeypatch):
    _, expanded, _ = run(capsys, "expand", "altra-v1")
    (tmp_path / "def.json").write_text(expanded)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "check", "./def.json", "--host", "altra", "--json")
    assert code == 0 and json.loads(out) == {"usable": True, "blockers": []}
    # not usable: the fix is searched for the definition read from the file, not for a model named "def.json"
    code, out, _ = run(capsys, "check", "def.json", "--host", "graviton2", "--json")
    data = json.loads(out)
    assert code == 1 and data["usable"] is False and "fix" in data
    assert [(b["register"], b["field"]) for b in data["blockers"]] == [("REVIDR_EL1", None)]
    code, out, err = run(capsys, "check", "./missing.json", "--host", "grace")
    assert code == 2 and out == "" and err == "arm-cpu-filter check: error: definition missing.json: no such file\n"

"""``migrate-check`` and ``upgrade-check`` end to end: exit statuses, JSON, blockers, a file store."""

from __future__ import annotations

import json

from arm_cpu_filter.cli import main
from arm_cpu_filter.samples import sample_host
from arm_cpu_filter.snapshot import dumps
from arm_cpu_filter.store import open_store
from arm_cpu_filter.testing.vmfacts import with_facts

G3 = sample_host("graviton3")
OLD = with_facts(G3, host="old", kernel="6.12.95")
NEW = with_facts(G3, host="new", kernel="7.3.4", drop=("S3_0_C2_C0_3",))


def write(tmp_path, snap):
    path = tmp_path / f"{snap.host}.json"
    path.write_text(dumps(snap))
    return str(path)


def test_migrate_check_exit_status_and_json(tmp_path, capsys):
    old, new = write(tmp_path, OLD), write(tmp_path, NEW)
    assert main(["migrate-check", "--from", new, "--to", old]) == 0
    assert "migration succeeds" in capsys.readouterr().out
    assert main(["migrate-check", "--from", old, "--to", new, "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["from"] == "old" and out["to"] == "new"
    assert [(b["kind"], b["subject"]) for b in out["blockers"]] == [("register-list", "S3_0_C2_C0_3")]


def test_migrate_check_refuses_ambiguous_or_incomplete_arguments(tmp_path, capsys):
    old = write(tmp_path, OLD)
    assert main(["migrate-check", "graviton3-v1", "--to", old]) == 2
    assert "give --from HOST" in capsys.readouterr().err
    assert main(["migrate-check", "graviton3-v1", "--definition", old, "--from", old, "--to", old]) == 2
    assert "not both" in capsys.readouterr().err


def test_upgrade_check_lists_instances_that_cannot_move_onto_or_back(tmp_path, capsys):
    store = open_store(f"file://{tmp_path / 'store'}")
    lean = with_facts(G3, host="lean", kernel="6.12.95", drop=("S3_3_C9_C12_0", "S3_0_C2_C0_3"))
    for snap in (OLD, lean):
        store.publish(snap, host=snap.host)
    store.record_instance("11111111-1111-4111-8111-111111111111", OLD.as_definition(), "old")
    store.record_instance("22222222-2222-4222-8222-222222222222", lean.as_definition(), "lean")
    upgraded = with_facts(G3, host="new", kernel="7.3.4", drop=("S3_0_C2_C0_3",))
    code = main(["upgrade-check", write(tmp_path, upgraded), "--store-url", store.url, "--format", "json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["cannot_move_onto"] == ["11111111-1111-4111-8111-111111111111"]
    assert out["cannot_move_back"] == ["22222222-2222-4222-8222-222222222222"]
    assert "destination kernel 6.12.95 has no S3_3_C9_C12_0" in out["instances"][1]["why"]

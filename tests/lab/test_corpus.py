"""The engine against KVM verdicts recorded by the lab (no boot needed; see README.rst)."""

from __future__ import annotations

import pytest

from tools.lab import build, corpus, verdicts


@pytest.mark.parametrize("kernel", sorted(build.KERNELS))
def test_engine_agrees_with_recorded_kvm(kernel: str, capsys: pytest.CaptureFixture[str]) -> None:
    if not corpus.corpus_path(kernel).exists():
        pytest.fail(f"missing {corpus.corpus_path(kernel)}: run python3 -m tools.lab.corpus")
    items = [(d, h, p, f"{kernel} {h['host']} {p['id']}") for d, h, p in corpus.iter_probes(kernel)]
    t = verdicts.tally(items)
    with capsys.disabled():
        print("\n" + t.line(f"recorded {kernel} engine vs KVM"))
    assert not t.mismatches, f"{len(t.mismatches)} mismatches, first ones:\n" + "\n".join(t.mismatches[:40])

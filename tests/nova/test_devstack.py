"""The devstack plugin, run by bash through its real phases, and the nova.conf it writes read back
by real Nova: oslo.config parses it and Nova's own filter and weigher loaders resolve our classes.

devstack itself cannot run here (it installs a whole cloud), so its library functions are
stand-ins defined below: ini editing with the semantics of devstack's ``iniset`` / ``iniadd``
/ ``iniget`` (first value; ``iniadd`` adds one more line of a repeatable option), and recorders
for the service functions (what ``run_process``, ``sudo usermod`` and ``sg`` were asked to do).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

INI_TOOL = textwrap.dedent('''
    # devstack's documented ini semantics (inc/ini-config), re-implemented: iniset replaces the
    # value of every line of the option in the section, or inserts one line right after the
    # section header; iniset_multiline deletes them all and writes one line per value; iniadd
    # is iniset_multiline of the old values plus the new; iniget prints what follows the first
    # "=" of the matching lines, whitespace collapsed.
    import re
    import sys
    from pathlib import Path

    def span(lines, section):
        start = next((i for i, ln in enumerate(lines) if ln.startswith(f"[{section}]")), None)
        if start is None:
            return None, None
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
        return start, end

    def matches(lines, section, option):
        start, end = span(lines, section)
        pat = re.compile(rf"^{re.escape(option)}[ \t]*=")
        return [] if start is None else [i for i in range(start + 1, end) if pat.match(lines[i])]

    def value_of(line):
        return line.split("=", 1)[1].strip()

    def main(op, path, section, option, *values):
        p = Path(path)
        lines = p.read_text().splitlines() if p.exists() else []
        hits = matches(lines, section, option)
        if op == "iniget":
            print(" ".join(" ".join(lines[i] for i in hits).split("=", 1)[1].split()) if hits else "")
            return
        if op == "iniget_multiline":
            print(" ".join(value_of(lines[i]) for i in hits))
            return
        if op == "iniadd":
            op, values = "iniset_multiline", tuple(value_of(lines[i]) for i in hits) + values
        if span(lines, section)[0] is None:
            lines += ["", f"[{section}]"]
        if op == "iniset" and hits:
            for i in hits:
                lines[i] = lines[i].split("=", 1)[0] + "= " + values[0]
        else:
            if op == "iniset_multiline":
                lines = [ln for i, ln in enumerate(lines) if i not in set(hits)]
            header = span(lines, section)[0]
            lines[header + 1:header + 1] = [f"{option} = {v}" for v in values]
        p.write_text("\\n".join(lines) + "\\n")

    main(*sys.argv[1:])
''')

SHIM = textwrap.dedent('''
    TOOL={tool}
    LOG={log}
    function iniget {{ python3 "$TOOL" iniget "$@"; }}
    function iniget_multiline {{ python3 "$TOOL" iniget_multiline "$@"; }}
    function iniset {{ python3 "$TOOL" iniset "$@"; }}
    function iniset_multiline {{ python3 "$TOOL" iniset_multiline "$@"; }}
    function iniadd {{ python3 "$TOOL" iniadd "$@"; }}
    function trueorfalse {{ local v=${{!2:-$1}}; [[ "$v" =~ ^(1|[Tt]rue|yes)$ ]] && echo True || echo False; }}
    function enable_service {{ :; }}
    function is_service_enabled {{
        local s; for s in "$@"; do [[ ",$ENABLED_SERVICES," == *",$s,"* ]] && return 0; done; return 1
    }}
    function echo_summary {{ echo "summary: $*" >> "$LOG"; }}
    function setup_develop {{ echo "setup_develop $*" >> "$LOG"; }}
    function run_process {{ echo "run_process $1|$2|${{3:-}}" >> "$LOG"; }}
    function stop_process {{ echo "stop_process $*" >> "$LOG"; }}
    function sg {{ echo "sg $1|$3" >> "$LOG"; }}
    function uname {{ if [[ "$1" == "-m" ]]; then echo "$FAKE_ARCH"; else command uname "$@"; fi; }}
    function sudo {{
        if [[ "$1" == "install" ]]; then "$@"; else echo "sudo $*" >> "$LOG"; fi
    }}
''')


def run_plugin(tmp: Path, phases: list[tuple[str, str]], services: str, arch: str = "x86_64",
               extra_env: dict[str, str] | None = None) -> tuple[Path, Path, list[str]]:  # fmt: skip
    """Source settings and run plugin.sh for each phase, as devstack's stack.sh does."""
    tool, log = tmp / "ini.py", tmp / "calls.log"
    tool.write_text(INI_TOOL)
    nova_conf, cpu_conf = tmp / "nova.conf", tmp / "nova-cpu.conf"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DEST": str(tmp / "opt"), "DATA_DIR": str(tmp / "data"), "NOVA_CONF_DIR": str(tmp / "etc-nova"),
        "NOVA_CONF": str(nova_conf), "NOVA_CPU_CONF": str(cpu_conf),
        "STACK_USER": subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip(),
        "ENABLED_SERVICES": services, "FAKE_ARCH": arch,
        **(extra_env or {}),
    }  # fmt: skip
    script = SHIM.format(tool=tool, log=log) + "\n".join(
        f"source {REPO / 'devstack/settings'}; source {REPO / 'devstack/plugin.sh'} {a} {b}" for a, b in phases
    )
    subprocess.run(["bash", "-euo", "pipefail", "-c", script], env=env, check=True, capture_output=True, text=True)
    return nova_conf, cpu_conf, log.read_text().splitlines() if log.exists() else []


NOVA_READ = textwrap.dedent('''
    import json, sys
    import nova.conf
    from nova.scheduler import filters, weights
    from arm_cpu_filter import conf as acf_conf
    CONF = nova.conf.CONF
    acf_conf.register_opts(CONF)
    CONF(["--config-file", sys.argv[1]], project="nova")
    fs = CONF.filter_scheduler
    filter_classes = filters.HostFilterHandler().get_matching_classes(fs.available_filters)
    weigher_classes = weights.HostWeightHandler().get_matching_classes(fs.weight_classes)
    print(json.dumps({
        "available": list(fs.available_filters),
        "enabled": list(fs.enabled_filters),
        "weight_classes": list(fs.weight_classes),
        "filter_classes": sorted(f"{c.__module__}.{c.__name__}" for c in filter_classes),
        "weigher_classes": sorted(f"{c.__module__}.{c.__name__}" for c in weigher_classes),
        "store_url": CONF.arm_cpu_filter.store_url,
        "max_snapshot_age": CONF.arm_cpu_filter.max_snapshot_age,
        "provider_config_location": CONF.compute.provider_config_location,
    }))
''')


def nova_reads(conf_file: Path) -> dict:
    """What real Nova makes of the file: its option values and the classes its handlers load."""
    out = subprocess.run([sys.executable, "-c", NOVA_READ, str(conf_file)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.fixture(autouse=True)
def need_bash() -> None:
    if not shutil.which("bash"):
        pytest.skip("bash is needed to run the devstack plugin")


def test_scheduler_node_config_is_what_nova_loads(tmp_path: Path) -> None:
    nova_conf, cpu_conf, calls = run_plugin(tmp_path, [("stack", "install"), ("stack", "post-config")], "n-sch,n-api")
    seen = nova_reads(nova_conf)
    assert seen["available"] == ["nova.scheduler.filters.all_filters", "arm_cpu_filter.scheduler.filters.ArmCpuModelFilter"]
    assert seen["enabled"][-1] == "ArmCpuModelFilter"
    assert seen["weight_classes"] == ["nova.scheduler.weights.all_weighers", "arm_cpu_filter.scheduler.weighers.ArmCpuWeigher"]
    assert "arm_cpu_filter.scheduler.filters.ArmCpuModelFilter" in seen["filter_classes"]
    assert "nova.scheduler.filters.compute_filter.ComputeFilter" in seen["filter_classes"]
    assert "arm_cpu_filter.scheduler.weighers.ArmCpuWeigher" in seen["weigher_classes"]
    assert "nova.scheduler.weights.ram.RAMWeigher" in seen["weigher_classes"]
    assert seen["store_url"] == f"file://{tmp_path}/data/arm-cpu-filter/store"
    assert seen["max_snapshot_age"] == 3600
    assert seen["provider_config_location"] == f"{tmp_path}/etc-nova/provider_config/"
    store = tmp_path / "data/arm-cpu-filter/store"
    assert store.is_dir() and (store.stat().st_mode & 0o777) == 0o750
    assert f"setup_develop {tmp_path}/opt/arm-cpu-filter" in calls
    assert not any(c.startswith(("run_process", "sg ")) for c in calls), calls  # no agent on a scheduler
    assert not cpu_conf.exists()  # x86_64: computes keep their cpu_mode


def test_post_config_twice_adds_nothing_twice(tmp_path: Path) -> None:
    nova_conf, _, _ = run_plugin(tmp_path, [("stack", "post-config"), ("stack", "post-config")], "n-sch")
    seen = nova_reads(nova_conf)
    assert seen["enabled"].count("ArmCpuModelFilter") == 1
    assert seen["weight_classes"].count("arm_cpu_filter.scheduler.weighers.ArmCpuWeigher") == 1
    assert seen["available"] == ["nova.scheduler.filters.all_filters", "arm_cpu_filter.scheduler.filters.ArmCpuModelFilter"]


def test_operator_filters_are_kept(tmp_path: Path) -> None:
    (tmp_path / "nova.conf").write_text(
        "[filter_scheduler]\navailable_filters = nova.scheduler.filters.all_filters\n"
        "available_filters = my_filters.SiteFilter\nenabled_filters = ComputeFilter\n"
    )
    nova_conf, _, _ = run_plugin(tmp_path, [("stack", "post-config")], "n-sch")
    seen = nova_reads_lines(nova_conf)
    assert seen["available_filters"] == ["nova.scheduler.filters.all_filters", "my_filters.SiteFilter",
                                         "arm_cpu_filter.scheduler.filters.ArmCpuModelFilter"]  # fmt: skip
    assert seen["enabled_filters"] == ["ComputeFilter,ArmCpuModelFilter"]


def nova_reads_lines(conf_file: Path) -> dict[str, list[str]]:
    """option -> values of [filter_scheduler] as written (for options whose classes do not exist here)."""
    out: dict[str, list[str]] = {}
    for line in conf_file.read_text().splitlines():
        if "=" in line and not line.startswith(("[", "#")):
            key, value = (x.strip() for x in line.split("=", 1))
            out.setdefault(key, []).append(value)
    return out


def test_operator_weighers_are_kept(tmp_path: Path) -> None:
    (tmp_path / "nova.conf").write_text("[filter_scheduler]\nweight_classes = nova.scheduler.weights.ram.RAMWeigher\n")
    nova_conf, _, _ = run_plugin(tmp_path, [("stack", "post-config")], "n-sch")
    assert nova_reads(nova_conf)["weigher_classes"] == [
        "arm_cpu_filter.scheduler.weighers.ArmCpuWeigher",
        "nova.scheduler.weights.ram.RAMWeigher",
    ]


def test_aarch64_compute_runs_the_agent_unprivileged_and_custom_mode(tmp_path: Path) -> None:
    phases = [("stack", "install"), ("stack", "post-config"), ("stack", "extra"), ("unstack", "")]
    _, cpu_conf, calls = run_plugin(tmp_path, phases, "n-cpu,arm-cpu-filter-agent", arch="aarch64",
                                    extra_env={"ARM_CPU_FILTER_CUSTOM_MODE": "True"})  # fmt: skip
    assert "[libvirt]" in cpu_conf.read_text() and "cpu_mode = custom" in cpu_conf.read_text()
    agent = [c for c in calls if c.startswith("run_process arm-cpu-filter-agent|")]
    assert len(agent) == 1 and agent[0].endswith("|kvm"), calls  # as STACK_USER with group kvm, not root
    assert " agent --config-file " in agent[0]
    first = [c for c in calls if c.startswith("sg kvm|")]
    assert len(first) == 1 and "agent --once" in first[0], calls
    assert "stop_process arm-cpu-filter-agent" in calls

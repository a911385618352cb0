"""The model layer's bench probes report their figures (the targets live in `arm-cpu-filter bench`)."""

from arm_cpu_filter.testing.bench.models import bench_all


def test_bench_all_reports_both_figures():
    figures = bench_all(quick=True)
    assert set(figures) == {"models_realize_us", "models_catalog_ms"}
    assert all(value > 0 for value in figures.values())

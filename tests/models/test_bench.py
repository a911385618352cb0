"""Speed budgets of the model layer (measured, with headroom for a loaded CI machine)."""

from arm_cpu_filter.models.bench import bench_all, bench_catalog_ms, bench_realize_us


def test_realize_with_overrides_is_fast():
    assert bench_realize_us(rounds=500) <= 200 * 2  # budget 200 us warm; x2 for shared CI cores


def test_catalog_loads_fast():
    assert bench_catalog_ms(rounds=3) <= 50 * 2  # budget 50 ms; x2 for shared CI cores


def test_bench_all_reports_both_figures():
    assert set(bench_all(quick=True)) == {"models_realize_us", "models_catalog_ms"}

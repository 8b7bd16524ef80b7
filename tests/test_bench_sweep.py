"""The size sweep of ``solvent bench`` (``matching.kernel_1k`` / ``_100k`` / ``_1m``):
sizes run in interleaved rounds, ratios pair runs of one round, and the twin must end
in the compiled book's state. Small sizes, so it runs in a second; the figures
themselves come from ``solvent bench``."""

from __future__ import annotations

import dataclasses

import pytest

from solvent import bench_matching as bm

SMALL = dataclasses.replace(
    bm.QUICK, sweep=(("matching.kernel_1k", 1_000), ("small.kernel_3k", 3_000)),
    sweep_ops=3_000, twin_sweep_max=3_000, repeats=3, sweep_peer="", sweep_parts=False)


@pytest.fixture(scope="module")
def sweep() -> bm.SweepRuns:
    return bm.sweep_rounds(SMALL)


def test_rounds_interleave_the_sizes_and_rotate_the_first(sweep: bm.SweepRuns) -> None:
    assert sweep.order == [[1_000, 3_000], [3_000, 1_000], [1_000, 3_000]]
    for resting in (1_000, 3_000):
        assert len(sweep.rates[resting]) == SMALL.repeats
        assert all(rate > 0 for rate in sweep.rates[resting])
        assert sweep.peer[resting] == []  # no peer asked for


def test_bench_size_reports_the_rounds_and_pairs_them(sweep: bm.SweepRuns) -> None:
    res = bm.bench_size(SMALL, "small.kernel_3k", 3_000, sweep)
    p = res["params"]
    small, big = sweep.rates[1_000], sweep.rates[3_000]
    assert res["value"] == round(max(big))
    assert p["runs"]["compiled"] == [round(x) for x in big]
    assert p["over_kernel_1k"] == round(max(big) / max(small), 2)
    assert p["over_kernel_1k_by_round"] == [round(b / a, 2) for a, b in zip(small, big,
                                                                             strict=True)]
    assert p["over_kernel_1k_median_of_rounds"] == sorted(p["over_kernel_1k_by_round"])[1]
    assert p["sweep_rounds"] == sweep.order
    assert p["ns_per_op"] == round(1e9 / max(big), 1)
    assert p["extra_ns_per_op_over_1k"] == round(1e9 / max(big) - 1e9 / max(small), 1)
    assert res["baselines"][bm.BASELINE] > 0  # the twin ran on the same rows, and agreed
    assert "native_peer" not in p


def test_bench_size_refuses_a_twin_that_ends_elsewhere(sweep: bm.SweepRuns) -> None:
    info = dict(sweep.info[1_000])
    info["check"] = ("not", "the", "twin's")
    other = dataclasses.replace(sweep, info={**sweep.info, 1_000: info})
    with pytest.raises(bm.MatchingBenchError, match="different states"):
        bm.bench_size(SMALL, "matching.kernel_1k", 1_000, other)


def test_sweep_refuses_runs_of_one_size_that_end_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every round replays the same rows on a fresh book, so every run of a size must end
    in the same state; a run that does not (here: its recorded state altered after the
    second run) stops the sweep."""
    real = bm.kernel_trial
    made = [0]

    def altered(core: str, w: bm.Workload, rows_per_call: int) -> bm.Trial:
        trial = real(core, w, rows_per_call)
        made[0] += 1
        if made[0] == 2:
            finish = trial.finish

            def finish_altered() -> None:
                finish()
                trial.info["check"] = ("altered",)

            trial.finish = finish_altered
        return trial

    monkeypatch.setattr(bm, "kernel_trial", altered)
    one_size = dataclasses.replace(SMALL, sweep=(("matching.kernel_1k", 1_000),))
    with pytest.raises(bm.MatchingBenchError, match="two runs of the same rows"):
        bm.sweep_rounds(one_size)

"""The benchmark harness: a --quick smoke run of the cheap entries at tiny sizes, and the harness rules.

No timing is asserted: speed targets are met in `make bench`, not in unit tests. These tests check
that every entry runs end to end on real files and that the result files carry what the README quotes.
"""

import json
import math

import pytest

from bench import entry_names, run_bench
from bench.harness import Goal, entry_params, interleaved, paired_ratio
from bench.stage_two import CACHED_QUICK

CHEAP = [
    "store_bytes",
    "stage_one_scale",
    "front_end_batched",
    "topk_error",
    "cached_kd_step",
    "logit_lookups",
    "packed_vs_wav",
    "audioset_decode",
    "verify_throughput",
    "verified_read_cost",
    "fingerprint_cost",
]
TINY = {
    "store_bytes": {"clips": 60, "classes": 30},
    "topk_error": {"rows": 64, "classes": 60},
    "cached_kd_step": {
        "n_mels": 32,
        "target_length": 100,
        "batch": 2,
        "classes": 10,
        "table_rows": 20,
        "repeats": 2,
        "warmup": 1,
    },
    "logit_lookups": {"rows": 3000, "classes": 40, "chunk_clips": 1000, "batches": 20},
    "packed_vs_wav": {"clips": 5, "clip_seconds": 1.0, "repeats": 1},
    "audioset_decode": {"clips": 3, "clip_seconds": 1.0, "repeats": 1},
    "verify_throughput": {"clips": 300, "classes": 30, "repeats": 1},
    "verified_read_cost": {
        "clips": 200,
        "classes": 30,
        "n_mels": 32,
        "target_length": 100,
        "batch": 2,
        "step_repeats": 1,
        "open_repeats": 1,
    },
    "fingerprint_cost": {"clips": 2, "seconds": 1.0},
    "stage_one_scale": {
        "big_ids": 3000,
        "small_ids": 100,
        "computed": 3,
        "views": 2,
        "n_mels": 32,
        "target_length": 100,
        "clip_seconds": 1.0,
        "num_classes": 10,
    },
    "front_end_batched": {"clips": 2, "clip_seconds": 1.0, "n_mels": 32, "target_length": 100, "views": 2},
}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "results.json"
    document = run_bench(
        only=CHEAP, quick=True, out=out, threads=1, scratch=folder / "scratch", overrides=TINY, log=lambda line: None
    )
    return folder, out, document


def test_result_file_records_machine_timings_ratios_and_goals(smoke):
    folder, out, document = smoke
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(document))
    machine = on_disk["machine"]
    for key in ("cpu_count", "torch", "threads", "date", "omp_wait_policy", "load_average_at_start"):
        assert key in machine
    assert machine["threads"] == 1 and machine["cpu_count"] >= 1
    assert on_disk["run"]["quick"] is True and on_disk["run"]["total_seconds"] > 0
    assert [e["name"] for e in on_disk["entries"]] == CHEAP  # the suite's order
    for entry in on_disk["entries"]:
        assert entry["error"] is None, entry["error"]
        assert entry["figures"] and entry["note"] and entry["date"]
        ratios = [f for f in entry["figures"] if f["unit"] == "x"]
        for figure in ratios:
            assert figure["value"] is not None and math.isfinite(figure["value"]) and figure["value"] > 0
        for figure in entry["figures"]:
            if figure["goal"] is not None:
                assert figure["ok"] is Goal(**figure["goal"]).met(figure["value"])
    by_name = {e["name"]: e for e in on_disk["entries"]}
    # ratios come from raw repeats kept beside them
    cached = by_name["cached_kd_step"]
    assert len(cached["timings"]["cached_step_s"]) == len(cached["timings"]["plain_step_s"]) == 2
    assert all(s > 0 for s in cached["timings"]["plain_step_s"])
    assert by_name["store_bytes"]["details"]["total_bytes"] > 0
    workers = by_name["logit_lookups"]["details"]["workers"]
    assert len(workers) == 2 and all(w["uss_mb"] > 0 for w in workers.values())


def test_markdown_table_has_one_row_per_figure(smoke):
    folder, out, document = smoke
    table = out.with_suffix(".md").read_text()
    assert "| entry | measured | goal | ok |" in table
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| entry")]
    assert len(rows) == sum(len(e["figures"]) for e in document["entries"])
    assert any(row.startswith("| store_bytes: ") and "<= 1.05x" in row for row in rows)


def test_scratch_is_cleaned(smoke):
    folder, _, _ = smoke
    assert not (folder / "scratch").exists()


def test_only_reruns_one_entry_and_keeps_the_others(smoke, tmp_path):
    _, out, _ = smoke
    copy = tmp_path / "results.json"
    copy.write_text(out.read_text())
    before = {e["name"]: e for e in json.loads(copy.read_text())["entries"]}
    document = run_bench(
        only=["topk_error"],
        quick=True,
        out=copy,
        threads=1,
        scratch=tmp_path / "s",
        overrides={"topk_error": TINY["topk_error"]},
        log=lambda line: None,
    )
    after = {e["name"]: e for e in document["entries"]}
    assert set(after) == set(before)
    assert after["store_bytes"] == before["store_bytes"]
    assert after["topk_error"]["date"] >= before["topk_error"]["date"]


def test_unknown_entries_and_parameters_are_refused(tmp_path):
    with pytest.raises(ValueError, match="choose from"):
        run_bench(only=["no_such_entry"], out=tmp_path / "r.json")
    with pytest.raises(ValueError, match="unknown parameter"):
        entry_params(CACHED_QUICK, CACHED_QUICK, True, {"batchsize": 4})
    assert set(CHEAP) < set(entry_names())


def test_driver_writes_both_files(tmp_path, monkeypatch):
    from stages.bench import main

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "b" / "results.json"
    assert main(["--quick", "--only", "topk_error", "--threads", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["entries"][0]["name"] == "topk_error"
    assert out.with_suffix(".md").exists()


def test_interleaving_alternates_order_and_ratios_pair_repeats():
    calls = []
    interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3, warmup=1)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert paired_ratio([2.0, 3.0, 100.0], [1.0, 1.0, 1.0]) == 3.0  # a median: one outlier does not move it
    assert Goal("<=", 1.1).met(1.05) and not Goal(">=", 3.0).met(2.9) and not Goal("<=", 1.0).met(math.nan)


def test_a_failing_entry_is_recorded_and_the_others_still_run(tmp_path):
    out = tmp_path / "results.json"
    document = run_bench(
        only=["store_bytes", "topk_error"],
        quick=True,
        out=out,
        threads=1,
        overrides={"store_bytes": TINY["store_bytes"], "topk_error": {**TINY["topk_error"], "k": 0}},
        log=lambda line: None,
    )
    by_name = {e["name"]: e for e in document["entries"]}
    assert "topk must be in" in by_name["topk_error"]["error"] and by_name["topk_error"]["ok"] is False
    assert by_name["store_bytes"]["error"] is None and by_name["store_bytes"]["figures"]
    assert document["all_goals_met"] is False
    assert "| topk_error | error: " in out.with_suffix(".md").read_text()


def test_gpu_checks_stage_one_step_runs_at_cpu_size(tmp_path):
    """`make gpu-check`'s paper-size stage-one step, shrunk to CPU size: it builds a packed project,
    runs stage one with views and bare inference of the same teacher, and reports their ratio."""
    from bench.gpu_stage_one import PaperStageOne, stage_one_vs_bare

    params = PaperStageOne(
        clips=4,
        clip_seconds=1.0,
        n_mels=32,
        target_length=100,
        num_classes=10,
        batch_size=4,
        repeats=1,
        freqm=4,
        timem=8,
    )
    result = stage_one_vs_bare(tmp_path, "efficientnet_tiny", 2, params, "cpu")
    assert result["inputs"] == 12 and result["failures"] == 0 and result["verify_problems"] == 0
    assert result["ratio_to_bare"] > 0 and result["stage_one_clips_per_s"] > 0 and result["gpu_util_mean"] is None
    assert list((tmp_path / "packed" / "paper").glob("audio_*.h5"))  # stage one read packed audio


def test_gpu_check_imports_and_refuses_cleanly_without_a_gpu(capsys):
    import torch

    from stages.gpu_check import main

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: make gpu-check runs for real")
    assert main([]) == 1 and "no CUDA device" in capsys.readouterr().out

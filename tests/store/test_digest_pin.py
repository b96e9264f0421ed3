"""DIGEST=<hex> pins the store stage two (and inspect, verify, the store commands) reads: a store
replaced by another, even one whose recorded digest is self-consistent, is refused; the run's
summary records the digest that was checked and how."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from pipeline.experiments.controls import write_prior_store, write_shuffled_store
from pipeline.features import front_end_dict
from pipeline.manifests import load_manifest
from pipeline.stage_two.run import train_student
from pipeline.store import StoreError, check_store
from pipeline.store.cli import main as store_main
from tests.helpers.drivers import assert_one_line_error, run
from tests.helpers.tiny_project import tiny_config


@pytest.fixture
def published(project):
    """stores/pub.zarr (the published store) and its digest; stores/other.zarr, another complete store
    of the same clips whose recorded digest is its own (what a CDN's other version or a forger serves)."""
    manifest = load_manifest("data_manifests/tiny")
    front_end = front_end_dict(tiny_config().front_end(manifest.stats()))
    write_prior_store("data_manifests/tiny", "stores/pub.zarr", front_end, "sigmoid")
    write_shuffled_store("data_manifests/tiny", "stores/pub.zarr", "stores/other.zarr", seed=1)
    digest = check_store("stores/pub.zarr").digest
    other = check_store("stores/other.zarr")
    assert other.ok and other.digest != digest and other.digest == other.recorded_digest  # self-consistent
    return digest


def swap(project: Path) -> None:
    shutil.rmtree(project / "stores/pub.zarr")
    shutil.copytree(project / "stores/other.zarr", project / "stores/pub.zarr")


def test_the_pinned_store_trains_and_the_summary_records_the_checked_digest(published):
    config = dataclasses.replace(tiny_config(epochs=1), kd="clean", logits="stores/pub.zarr", digest=published)
    summary = train_student("tiny", config, "pinned", progress=False)
    on_disk = json.loads(Path("runs/tiny/pinned/summary.json").read_text())
    for record in (summary, on_disk):
        kd = record["kd"] if isinstance(record.get("kd"), dict) else record
        assert kd["store_digest"] == published and kd["store_digest_checked"] == "pinned", kd


def test_a_swapped_store_is_refused_by_student_inspect_verify_and_the_store_commands(published, project, capsys):
    swap(project)
    config = dataclasses.replace(tiny_config(epochs=1), kd="clean", logits="stores/pub.zarr", digest=published)
    with pytest.raises(StoreError, match=f"is not the published {published}"):
        train_student("tiny", config, "swapped", progress=False)
    assert not Path("runs/tiny/swapped/checkpoints").exists()  # refused before the first step
    # without the pin the swapped store trains: its own recorded digest is consistent (the N21 case)
    assert check_store("stores/pub.zarr").ok

    line = assert_one_line_error(
        run(
            project,
            "stages.student",
            "--dataset",
            "tiny",
            "--logits",
            "stores/pub.zarr",
            "--digest",
            published,
            "--",
            "model=efficientnet_tiny",
            "epochs=1",
        ),
        "stores/pub.zarr",
    )
    assert f"is not the published {published}" in line
    for argv in (
        ["verify", "stores/pub.zarr", "--digest", published],
        ["inspect", "stores/pub.zarr", "--digest", published],
        ["subset", "stores/pub.zarr", "stores/sub.zarr", "--split", "train", "--digest", published],
        ["export", "stores/pub.zarr", "stores/pub.zarr.zip", "--digest", published],
    ):
        assert store_main(argv) == 1, argv
        out, err = capsys.readouterr()
        assert f"is not the published {published}" in out + err, (argv, out, err)
    assert not Path("stores/sub.zarr").exists() and not Path("stores/pub.zarr.zip").exists()
    result = run(
        project, "stages.inspect_store", "--dataset", "tiny", "--store", "stores/pub.zarr", "--digest", published
    )
    assert result.returncode == 1 and f"is not the published {published}" in result.stdout


def test_a_malformed_digest_is_refused_before_anything_is_read(published, project):
    line = assert_one_line_error(
        run(
            project,
            "stages.student",
            "--dataset",
            "tiny",
            "--logits",
            "stores/pub.zarr",
            "--digest",
            published[:16],
            "--",
            "model=efficientnet_tiny",
            "epochs=1",
        ),
        "digest",
    )
    assert "64 hexadecimal digits" in line

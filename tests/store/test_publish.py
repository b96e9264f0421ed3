"""`publish`: the folder a lab uploads, checked with tools the project did not write (huggingface_hub's
dataset-card parser, coreutils' sha256sum) and verified against the digest the card states."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pipeline.store import check_store
from pipeline.store.cli import main
from tests.helpers.store import MIDS, fill_store, make_store


def test_publish_writes_zip_card_and_checksums(tmp_path, capsys):
    store = make_store(tmp_path / "cnn.zarr", views=2, view_seed=7)
    fill_store(store, views=2, failed={"clip009": "unreadable header"})
    out = tmp_path / "release"
    assert main(["publish", str(store), str(out), "--license", "cc-by-4.0", "--repo", "lab-a/cnn-logits"]) == 0
    printed = capsys.readouterr().out
    digest = re.search(r"digest     ([0-9a-f]{64})", printed).group(1)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "SHA256SUMS", "cnn.zarr.zip"]
    assert check_store(out / "cnn.zarr.zip", expected_digest=digest).ok

    hub = pytest.importorskip("huggingface_hub")
    card = hub.DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0" and card.data.task_categories == ["audio-classification"]
    assert card.data.size_categories == ["n<1K"]
    text = card.text
    assert digest in text and "ast_tiny" in text and "a" * 64 in text  # teacher and its checkpoint hash
    rows = re.findall(r"^\| (\d+) \| `([^`]+)` \| (.+) \|$", text, re.MULTILINE)
    assert [(int(i), mid) for i, mid, _ in rows] == list(enumerate(MIDS))  # the vocabulary, in order
    assert "clips.csv `" + "c" * 64 in text and '"sample_rate": 16000' in text  # manifest hash, front end
    assert "| train | 6 / 6 |" in text and "| eval | 3 / 4 |" in text  # coverage per split
    assert f"make student LOGITS=hf://datasets/lab-a/cnn-logits/cnn.zarr.zip DIGEST={digest}" in text

    if shutil.which("sha256sum"):
        result = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout.count(": OK") == 2, result.stdout + result.stderr

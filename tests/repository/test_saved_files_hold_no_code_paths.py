"""Runs and stores on disk survive a reorganisation of the code: a checkpoint's pickle names no class
or function of this project (only torch's tensor rebuilders and builtins), and a store's metadata is
plain JSON. So moving a module (as the floor plan of issue 24 did) breaks no earlier run or store."""

from __future__ import annotations

import json
import pickletools
import zipfile
from pathlib import Path

from pipeline.training import run_training
from tests.helpers.store import fill_store, make_store
from tests.helpers.tiny_project import tiny_config


def pickled_globals(checkpoint: Path) -> set[str]:
    """Every `module name` a checkpoint's pickle imports when it is loaded."""
    with zipfile.ZipFile(checkpoint) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    found, strings = set(), []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif opcode.name == "STACK_GLOBAL":
            found.add(f"{strings[-2]} {strings[-1]}")
        elif opcode.name == "GLOBAL":
            found.add(arg)
    return found


def test_checkpoints_name_no_module_of_this_project(project):
    run_training("tiny", tiny_config(epochs=1), "teacher", progress=False)
    checkpoints = sorted(Path("runs/tiny/teacher/checkpoints").glob("*.pt"))
    assert {p.name for p in checkpoints} >= {"last.pt", "best.pt", "final.pt"}
    for checkpoint in checkpoints:
        modules = {name.split()[0] for name in pickled_globals(checkpoint)}
        assert modules, checkpoint  # the scan sees the tensor rebuilders, so it reads the pickle
        assert not [m for m in modules if m.split(".")[0] in ("pipeline", "stages", "bench")], checkpoint
        assert modules <= {"torch._utils", "torch", "collections", "builtins", "_codecs"}, modules


def test_store_metadata_is_plain_json(tmp_path):
    path = make_store(tmp_path / "s.zarr", views=2, view_seed=7)
    fill_store(path, views=2)
    metadata = list(Path(path).rglob("zarr.json"))
    assert len(metadata) > 5  # the group and its arrays
    for meta in metadata:
        text = meta.read_text()
        json.loads(text)
        assert "pipeline." not in text and "<class" not in text, meta

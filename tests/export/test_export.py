"""`make export`: ONNX parity with PyTorch per model family (checked by onnxruntime, an independent
runtime, and onnx's own checker), the safetensors + config.json round trip without pickle (read by
the safetensors library alone), ENGINE=onnx giving predict's top-k, the model card's front matter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
import tomllib
import torch
import yaml

from pipeline.audio import write_wav
from pipeline.checkpoints import save_checkpoint
from pipeline.config import Config, FrontEndConfig, config_to_dict
from pipeline.export import BundleError, export_model, load_bundle
from pipeline.export.onnx_export import INPUT_NAME, ONNX_FILE
from pipeline.inference import PredictJob, PredictSettings, run_predict
from pipeline.models import create_model
from tests.helpers import REPO_ROOT

PARITY = 1e-4  # the bound on max |ONNX - PyTorch| logit
FRONT = FrontEndConfig(n_mels=32, target_length=64, norm_mean=-6.0, norm_std=4.0)
MIDS = [f"/t/{i}" for i in range(5)]

# each family: the CNN with its mean head (the attention head is the trained student's, exported in the
# last test under export_model's own 1e-4 check), the AST with the paper's token readout and the demo's
# overlapping patches and fixed position table. One export costs ~10 s (torch.export), hence not more.
FAMILIES = [
    ("efficientnet_tiny", {"pooling": "mean"}),
    ("ast_micro", {"pooling": "token", "position": "sincos", "freq_stride": 8, "time_stride": 12}),
]


def checkpoint_of(model: torch.nn.Module, path: Path, activation: str = "sigmoid") -> Path:
    """A checkpoint in the training loop's layout (what `make export` receives)."""
    save_checkpoint(
        {
            "model": model.state_dict(),
            "model_name": model.model_name,
            "model_config": model.model_config,
            "config": config_to_dict(Config(model=model.model_name, n_mels=32, target_length=64)),
            "front_end": vars(FRONT),
            "vocabulary": {"mids": MIDS, "names": [m.upper() for m in MIDS]},
            "activation": activation,
            "dataset": "tiny",
            "epoch": 1,
            "metrics": {},
        },
        path,
    )
    return path


@pytest.fixture(scope="module", params=FAMILIES, ids=lambda p: f"{p[0]}-{p[1]['pooling']}")
def exported(request, tmp_path_factory):
    name, options = request.param
    torch.manual_seed(0)
    model = create_model(name, num_classes=len(MIDS), n_mels=32, target_length=64, **options).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval-mode folding is exercised
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2.0)
    folder = tmp_path_factory.mktemp("export")
    result = export_model(checkpoint_of(model, folder / "final.pt"), folder / "out", log=lambda line: None)
    return model, folder / "out", result


def test_onnx_logits_match_pytorch_for_any_batch(exported):
    model, folder, result = exported
    onnx.checker.check_model(str(folder / ONNX_FILE), full_check=True)
    session = onnxruntime.InferenceSession(str(folder / ONNX_FILE), providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0]
    assert declared.name == INPUT_NAME and declared.shape[1:] == [64, 32] and isinstance(declared.shape[0], str)
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 7):  # the batch axis is dynamic: neither is the export's example batch of 2
        features = torch.randn(batch, 64, 32, generator=generator) * 1.5
        with torch.no_grad():
            reference = model(features).numpy()
        got = session.run(None, {INPUT_NAME: features.numpy()})[0]
        assert got.shape == reference.shape and np.abs(got - reference).max() <= PARITY
    assert result["onnx_max_abs_diff"] <= PARITY


def test_safetensors_and_config_rebuild_the_model_without_pickle(exported):
    from safetensors.numpy import load_file  # the format's own reader, no torch involved

    model, folder, _ = exported
    tensors = load_file(str(folder / "model.safetensors"))
    state = model.state_dict()
    assert set(tensors) == set(state)
    assert all(np.array_equal(tensors[k], state[k].numpy()) for k in state)
    config = json.loads((folder / "config.json").read_text())
    rebuilt = create_model(config["model_name"], **config["model_config"])  # the registry's own builder
    rebuilt.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    features = torch.randn(3, 64, 32)
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(features), model(features))
    assert config["front_end"] == vars(FRONT) and config["vocabulary"]["mids"] == MIDS
    assert config["parameters"] == sum(p.numel() for p in model.parameters())
    assert load_bundle(folder)[1].mids == MIDS


def test_a_received_config_naming_code_or_files_is_refused(exported, tmp_path):
    _, folder, _ = exported
    for field, value, message in (
        ("model_name", "os.system", "unknown model"),
        ("model_config", {"checkpoint": "/etc/passwd"}, "refused"),
        ("front_end", {"norm_std": "1; rm -rf"}, "finite number"),
    ):
        copy = tmp_path / field
        copy.mkdir()
        config = json.loads((folder / "config.json").read_text())
        config[field] = {**config[field], **value} if isinstance(value, dict) else value
        (copy / "config.json").write_text(json.dumps(config))
        (copy / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
        with pytest.raises(ValueError, match=message):
            load_bundle(copy)


def test_the_model_card_has_hub_front_matter_and_the_facts(exported):
    model, folder, _ = exported
    text = (folder / "README.md").read_text()
    matter = yaml.safe_load(re.match(r"^---\n(.*?)\n---\n", text, re.S).group(1))
    assert matter["pipeline_tag"] == "audio-classification" and model.model_name in matter["tags"]
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in text
    assert "make predict CHECKPOINT=<this folder>" in text and "norm" in text and "Licence" in text


def test_predict_through_onnxruntime_gives_the_torch_top_k(student, tmp_path):  # noqa: F811
    result = export_model(student, tmp_path / "exported", log=lambda line: None)
    assert result["onnx_max_abs_diff"] <= PARITY  # the attention head
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        write_wav(folder / f"{i}.wav", (0.2 * rng.standard_normal(int(16000 * (0.4 + 2.5 * i)))).astype(np.float32))
    tables = {}
    for engine, source in (("torch", student), ("onnx", tmp_path / "exported")):
        out = tmp_path / f"{engine}.csv"
        run_predict(
            PredictJob(str(source), str(folder), str(out), PredictSettings(topk=4), engine=engine, progress=False),
            log=lambda line: None,
        )
        tables[engine] = pd.read_csv(out, dtype={"id": str})
    top = [f"top{k}_mid" for k in range(1, 5)]
    assert tables["onnx"][top].equals(tables["torch"][top])
    np.testing.assert_allclose(tables["onnx"].filter(like="score:"), tables["torch"].filter(like="score:"), atol=1e-5)
    card = (tmp_path / "exported" / "README.md").read_text()
    assert "train clips 22" in card and "clips.csv " in card  # from the run's summary and its manifest


def test_export_pins_are_the_extras():
    def names(lines):
        return sorted(line.split("#")[0].strip() for line in lines if line.split("#")[0].strip())

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pinned = names((REPO_ROOT / "requirements-export.txt").read_text().splitlines())
    assert pinned == sorted(extras["export"])
    assert "-r requirements-export.txt" in (REPO_ROOT / "requirements-test.txt").read_text()
    assert BundleError.__mro__[1] is ValueError  # the drivers' one-line error policy covers it


def test_a_students_card_names_its_teacher_store_digest_and_kd_settings(tmp_path, monkeypatch):
    """The digest on the card is the one `make verify` computes from the store's chunks, and the
    teacher's checkpoint hash is the file's sha256 (hashlib, not the project's helper)."""
    import hashlib

    from pipeline.config import apply_overrides
    from pipeline.stage_one import StageOneJob, run_stage_one
    from pipeline.stage_two.run import train_student
    from pipeline.store import check_store
    from pipeline.testing import write_tiny_dataset
    from pipeline.training import run_training
    from tests.helpers.tiny_project import tiny_config

    write_tiny_dataset(tmp_path)
    monkeypatch.chdir(tmp_path)
    run_training("tiny", tiny_config(model="ast_micro", epochs=1), "teacher", progress=False)
    run_stage_one(
        StageOneJob("tiny", "runs/tiny/teacher", "stores/tiny/t.zarr", scheduler="inline", chunk_clips=16),
        progress=False,
    )
    config = apply_overrides(tiny_config(epochs=1, tau=2.0, kd_lambda=0.3), ["logits=stores/tiny/t.zarr", "kd=clean"])
    train_student("tiny", config, "student", progress=False)
    export_model("runs/tiny/student", "exported", onnx=False, log=lambda line: None)
    card = Path("exported/README.md").read_text()
    teacher_sha = hashlib.sha256(Path("runs/tiny/teacher/checkpoints/final.pt").read_bytes()).hexdigest()
    assert f"digest {check_store('stores/tiny/t.zarr').digest}" in card
    assert f"teacher: ast_micro, checkpoint sha256 {teacher_sha}" in card
    assert "mode clean, loss bce, lambda 0.3 (task weight), tau 2.0" in card and "knowledge-distillation" in card
    assert not Path("exported/model.onnx").exists() and Path("exported/model.safetensors").is_file()

"""Published teachers (weights-only AST/PSLA files) imported as stage-one teachers, and INIT."""

import numpy as np
import pytest
import torch

from pipeline.checkpoints import load_checkpoint, save_checkpoint
from pipeline.config import Config, apply_overrides
from pipeline.manifests import load_manifest
from pipeline.models import create_model
from pipeline.models.init_model import InitModel, model_for_init
from pipeline.stage_one import StageOneJob, run_stage_one
from pipeline.stage_one.published import (
    IMPORTER_VERSION,
    PUBLISHED,
    PublishedTeacherError,
    describe,
    read_vocabulary_file,
    split_published_args,
    teacher_run_for,
)
from pipeline.store import LogitTable
from pipeline.training import run_training
from tests.helpers.checkpoints import ast_layout
from tests.helpers.tiny_project import tiny_config

FRONT_END = {"n_mels": 32, "target_length": 64, "norm_mean": -6.0, "norm_std": 4.0, "norm_divisor": 2.0}


def _audioset_labels(path, manifest):
    lines = ["index,mid,display_name"] + [f'{i},{label.mid},"{label.name}"' for i, label in enumerate(manifest.labels)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def published(project):
    """A weights-only file in the published AST layout, and an AudioSet-style vocabulary for it."""
    torch.manual_seed(0)
    source = create_model("ast_micro", num_classes=4, n_mels=32, target_length=64).eval()
    torch.save(ast_layout(source), project / "my_ast_release.pth")
    labels = _audioset_labels(project / "class_labels_indices.csv", load_manifest("data_manifests/tiny"))
    return source, project / "my_ast_release.pth", labels


def test_the_published_files_are_described_by_their_names():
    ast = describe("/x/audioset_10_10_0.4593.pth")
    assert (ast.model, ast.target_length, ast.norm_divisor, ast.num_classes) == ("ast_base", 1024, 2.0, 527)
    psla = describe("fsd_mdl_wa.pth")
    # PSLA's own model and head (tests/models/test_psla_reference.py compares it with efficientnet_pytorch)
    assert (psla.model, psla.pooling, psla.target_length, psla.norm_divisor, psla.num_classes) == (
        "efficientnet_b2_psla",
        "psla_attention",
        3000,
        1.0,
        200,
    )
    assert set(PUBLISHED) >= {"as_mdl_0.pth", "as_mdl_0_wa.pth", "fsd_mdl_best_single.pth"}
    with pytest.raises(PublishedTeacherError, match="pass MODEL=<registry name>"):
        describe("someone_elses_model.pth")


def test_vocabulary_files_in_both_official_formats(tmp_path):
    audioset = tmp_path / "class_labels_indices.csv"
    audioset.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n1,/m/05zppz,"Male speech, man speaking"\n')
    fsd = tmp_path / "vocabulary.csv"
    fsd.write_text("0,Accelerating_and_revving_and_vroom,/m/07q2z82\n1,Accordion,/m/0mkg\n")
    assert read_vocabulary_file(audioset) == (["/m/09x0r", "/m/05zppz"], ["Speech", "Male speech, man speaking"])
    assert read_vocabulary_file(fsd) == (["/m/07q2z82", "/m/0mkg"], ["Accelerating_and_revving_and_vroom", "Accordion"])


def test_a_published_file_becomes_a_stage_one_teacher(published):
    source, path, labels = published
    with pytest.raises(PublishedTeacherError, match="pass LABELS="):
        teacher_run_for(str(path), "tiny")
    run = teacher_run_for(str(path), "tiny", labels=str(labels), model="ast_micro", overrides=FRONT_END)
    assert run == "runs/tiny/imported/my_ast_release"
    ckpt = load_checkpoint(f"{run}/checkpoints/final.pt")
    assert ckpt["imported_from"]["file"] == "my_ast_release.pth" and ckpt["activation"] == "sigmoid"
    assert teacher_run_for(str(path), "tiny", labels=str(labels), model="ast_micro", overrides=FRONT_END) == run
    run_stage_one(
        StageOneJob("tiny", run, "stores/published.zarr", scheduler="inline", dtype="float32"), progress=False
    )
    table = LogitTable.open("stores/published.zarr")
    assert table.teacher["model"] == "ast_micro" and table.vocabulary_mids == load_manifest("data_manifests/tiny").mids
    # the stored logits are the released model's own outputs on this project's front end
    from pipeline.config import FrontEndConfig
    from pipeline.training.dataset import ClipDataset

    manifest = load_manifest("data_manifests/tiny")
    features = ClipDataset(manifest, manifest.clips[:3], FrontEndConfig(**FRONT_END))
    with torch.no_grad():
        expected = source(torch.stack([features[i]["features"] for i in range(3)])).numpy()
    np.testing.assert_allclose(table.logits_for(np.arange(3)), expected, rtol=1e-4, atol=1e-4)


def test_our_own_runs_and_checkpoints_pass_through(project):
    run_training("tiny", tiny_config(epochs=1), "cnn", progress=False)
    assert teacher_run_for("runs/tiny/cnn", "tiny") == "runs/tiny/cnn"
    assert teacher_run_for("runs/tiny/cnn/checkpoints/final.pt", "tiny") == "runs/tiny/cnn/checkpoints/final.pt"


def test_init_starts_training_from_a_published_file(published, capsys):
    source, path, _ = published
    # lr 1e-30: steps below float32 resolution, so the run keeps the weights it started from
    config = apply_overrides(tiny_config(model="ast_micro", epochs=1, lr=1e-30, warmup_steps=0), {"init": str(path)})
    run_training("tiny", config, "init", progress=False)
    assert "ast layout" in capsys.readouterr().out
    final = load_checkpoint("runs/tiny/init/checkpoints/final.pt")["model"]
    for key, value in source.state_dict().items():
        assert torch.allclose(final[key], value, rtol=0, atol=1e-20), key


def test_an_import_is_redone_when_the_importer_or_the_request_changes(published, capsys):
    _, path, labels = published
    run = teacher_run_for(str(path), "tiny", labels=str(labels), model="ast_micro", overrides=FRONT_END)
    final = f"{run}/checkpoints/final.pt"
    ckpt = load_checkpoint(final)
    assert ckpt["imported_from"]["importer_version"] == IMPORTER_VERSION
    # a run imported by the first importer (no version recorded) is stale: imported again, not reused
    del ckpt["imported_from"]["importer_version"]
    save_checkpoint(ckpt, final)
    capsys.readouterr()
    teacher_run_for(str(path), "tiny", labels=str(labels), model="ast_micro", overrides=FRONT_END)
    assert f"importer version 1, this is version {IMPORTER_VERSION}" in capsys.readouterr().out
    assert load_checkpoint(final)["imported_from"]["importer_version"] == IMPORTER_VERSION
    # another model option is another import (ast_micro's own head is max pooling, the release's token)
    teacher_run_for(
        str(path), "tiny", labels=str(labels), model="ast_micro", overrides=FRONT_END, options={"pooling": "token"}
    )
    assert "other model options" in capsys.readouterr().out
    assert load_checkpoint(final)["model_config"]["pooling"] == "token"
    teacher_run_for(
        str(path), "tiny", labels=str(labels), model="ast_micro", overrides=FRONT_END, options={"pooling": "token"}
    )
    assert "again" not in capsys.readouterr().out  # the same request reuses it


def test_teacher_logits_takes_a_published_files_model_options_from_the_registry(published):
    _, path, _ = published
    named = {"pooling": "token", "time_stride": "10", "batch_size": "4"}
    options, rest = split_published_args(str(path), "ast_micro", named, set(Config.__dataclass_fields__))
    assert options == {"pooling": "token", "time_stride": "10"} and rest == {"batch_size": "4"}
    with pytest.raises(
        PublishedTeacherError,
        match=r"ARGS heads: neither a recipe key nor an option of ast_micro "
        r"\(its options: .*time_stride",
    ):
        split_published_args(str(path), "ast_micro", {"heads": "3"}, set(Config.__dataclass_fields__))
    with pytest.raises(PublishedTeacherError, match="attention_heads: not an option of ast_micro"):
        describe(path, "ast_micro", options={"attention_heads": 2})
    with pytest.raises(PublishedTeacherError, match="time_stride='ten'"):
        describe(path, "ast_micro", options={"time_stride": "ten"})
    assert describe("as_mdl_0.pth", options={"attention_heads": "2"}).options == {"attention_heads": 2}


def psla_b0_file(path, classes: int) -> None:
    """A PSLA-layout EfficientNet-B0 file made with efficientnet_pytorch (PSLA's eff_b=0), 4 heads."""
    from efficientnet_pytorch import EfficientNet

    torch.manual_seed(0)
    state = {
        f"module.effnet.{k}": v
        for k, v in EfficientNet.from_name("efficientnet-b0", in_channels=1).state_dict().items()
        if not k.startswith("_fc.")
    }
    for i in range(4):
        for kind in ("att", "cla"):
            state[f"module.attention.{kind}.{i}.weight"] = 0.05 * torch.randn(classes, 1280, 1, 1)
            state[f"module.attention.{kind}.{i}.bias"] = torch.zeros(classes)
    state["module.attention.head_weight"] = torch.full((4,), 0.25)
    torch.save(state, path)


def test_init_from_a_psla_file_builds_psla_model_whatever_the_recipe_pooling(project, capsys):
    psla_b0_file(project / "psla_b0.pth", classes=4)
    assert model_for_init("efficientnet_b0_psla", "psla_attention", "psla_b0.pth") == InitModel(
        "efficientnet_b0_psla", "psla_attention"
    )
    assert model_for_init("ast_micro", "mean", str(project / "my_missing.pth")) is None  # not a file: the loader says
    with pytest.raises(
        ValueError,
        match=r"INIT=psla_b0.pth is PSLA's EfficientNet-B0, but the recipe's "
        r"model=efficientnet_b2 cannot hold it",
    ):
        model_for_init("efficientnet_b2", "mean", "psla_b0.pth")
    with pytest.raises(ValueError, match="model=ast_micro cannot hold it"):
        model_for_init("ast_micro", "mean", "psla_b0.pth")
    config = apply_overrides(
        tiny_config(model="efficientnet_b0", pooling="attention", epochs=1, lr=1e-30, warmup_steps=0, max_clips=8),
        {"init": "psla_b0.pth"},
    )
    run_training("tiny", config, "init", progress=False)
    console = capsys.readouterr()
    assert (
        "note: INIT=psla_b0.pth is a PSLA model: building efficientnet_b0_psla with pooling=psla_attention "
        "(4 heads) instead of the recipe's model=efficientnet_b0 pooling=attention"
    ) in console.out
    assert "warning: psla_b0.pth: n_mels=32" in console.err  # PSLA's 4-row frequency pooling needs 97-128 bins
    final = load_checkpoint("runs/tiny/init/checkpoints/final.pt")
    assert (final["model_name"], final["model_config"]["pooling"]) == ("efficientnet_b0_psla", "psla_attention")


def test_make_teacher_logits_passes_model_options_and_refuses_unknown_ones(published, capsys):
    """Through the driver `make teacher-logits TEACHER=<file> LABELS=<vocab> MODEL=.. ARGS=..` runs."""
    from stages.common import run_main
    from stages.teacher_logits import main

    _, path, labels = published
    front_end = [f"{k}={v}" for k, v in FRONT_END.items()]
    base = [
        "--dataset",
        "tiny",
        "--teacher",
        str(path),
        "--labels",
        str(labels),
        "--model",
        "ast_micro",
        "--scheduler",
        "inline",
        "--dtype",
        "float32",
        "--out",
        "stores/options.zarr",
    ]
    with pytest.raises(SystemExit) as stopped:
        run_main(main, base + ["--", "heads=3", *front_end])
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert stopped.value.code == 2 and len(error) == 1
    assert "heads: neither a recipe key nor an option of ast_micro" in error[0]
    assert main(base + ["--", "pooling=token", "time_stride=10", *front_end]) == 0
    ckpt = load_checkpoint("runs/tiny/imported/my_ast_release/checkpoints/final.pt")
    assert ckpt["model_config"]["pooling"] == "token" and ckpt["imported_from"]["request"]["options"] == {
        "pooling": "token",
        "time_stride": "10",
    }
    assert LogitTable.open("stores/options.zarr").teacher["model"] == "ast_micro"

"""Published teachers: the AST and PSLA checkpoint files their authors released, as stage-one teachers.

A published file holds weights only: no architecture name, no front end, no vocabulary. Each one
is known here by its published file name, with what its parent code base trained it on (the front
end must match, or the logits are meaningless). The user supplies the vocabulary file the outputs
follow (AudioSet's ``class_labels_indices.csv`` for the AudioSet models, FSD50K's
``vocabulary.csv`` for the FSD50K ones). :func:`import_published_teacher` writes an ordinary
teacher run (``checkpoints/final.pt`` in this project's format, loaded with ``weights_only=True``
from then on), so stage one, ``make evaluate`` and ``KD=online`` use it like any teacher; the
import is recorded in the checkpoint (file name, sha256).

=============================  ===================  ======  ======  ==============  =======  ========
published file                 model                mels    frames  mean / std      divisor  classes
=============================  ===================  ======  ======  ==============  =======  ========
audioset_10_10_0.4593.pth      ast_base (token)     128     1024    -4.2677/4.5690  2        527
as_mdl_0.pth, as_mdl_0_wa.pth  efficientnet_b2 att  128     1056    -4.6476/4.5699  1        527
fsd_mdl_best_single.pth,       efficientnet_b2 att  128     3000    -4.6476/4.5699  1        200
fsd_mdl_wa.pth
=============================  ===================  ======  ======  ==============  =======  ========

AST: https://github.com/YuanGongND/ast (full AudioSet, stride 10, weight averaging, 0.459 mAP). The
other AST releases (``audioset_<f>_<t>_<mAP>.pth`` with strides 10-16, ``speechcommands_10_10_0.9812.pth``)
are recognised by their names, which give their strides (``pipeline/models/ast_releases.py``).
PSLA: https://github.com/YuanGongND/psla (EfficientNet-B2 with 4-head attention; AudioSet and
FSD50K single and weight-averaged models). Other files: give MODEL and the front end explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config, FrontEndConfig, config_to_dict
from ..manifests import sha256_file
from ..manifests.audioset import read_class_labels
from ..manifests.fsd50k import read_vocabulary
from ..manifests.validate import Problems
from ..checkpoints import save_checkpoint
from ..models.ast_releases import ast_release, parse_grid


@dataclass(frozen=True)
class PublishedTeacher:
    model: str
    pooling: str
    n_mels: int
    target_length: int
    norm_mean: float
    norm_std: float
    norm_divisor: float
    num_classes: int
    trained_on: str
    ast_freq_stride: int = 0  # an AST's patch strides (0: the model's own, 10); a release's come from its name
    ast_time_stride: int = 0
    ast_source_grid: str = ""  # FREQxTIME of the file's position table, for a file its name does not describe


# AST's statistics to the digit (ast src/run.py), as the AudioSet recipes carry them: stage two compares
# a teacher's front end with the student's exactly
_AST_AUDIOSET = PublishedTeacher("ast_base", "token", 128, 1024, -4.2677393, 4.5689974, 2.0, 527, "audioset")
_PSLA_AUDIOSET = PublishedTeacher("efficientnet_b2", "attention", 128, 1056, -4.6476, 4.5699, 1.0, 527, "audioset")
_PSLA_FSD50K = PublishedTeacher("efficientnet_b2", "attention", 128, 3000, -4.6476, 4.5699, 1.0, 200, "fsd50k")

PUBLISHED: dict[str, PublishedTeacher] = {
    "audioset_10_10_0.4593.pth": _AST_AUDIOSET,
    "as_mdl_0.pth": _PSLA_AUDIOSET,
    "as_mdl_0_wa.pth": _PSLA_AUDIOSET,
    "fsd_mdl_best_single.pth": _PSLA_FSD50K,
    "fsd_mdl_wa.pth": _PSLA_FSD50K,
}


class PublishedTeacherError(ValueError):
    """A published checkpoint that cannot be imported as described; the message says what to give."""


def read_vocabulary_file(path: str | Path) -> tuple[list[str], list[str]]:
    """(mids, names) from AudioSet's class_labels_indices.csv (with its header) or FSD50K's
    vocabulary.csv (no header: index, name, mid)."""
    path = Path(path)
    if not path.is_file():
        raise PublishedTeacherError(f"{path}: vocabulary file not found (LABELS=class_labels_indices.csv or "
                                    f"vocabulary.csv)")
    problems = Problems()
    first = path.read_text(encoding="utf-8-sig").split("\n", 1)[0].lower()
    labels = read_class_labels(path, problems) if "mid" in first else read_vocabulary(path, problems)
    problems.raise_if_any(str(path))
    return [label.mid for label in labels], [label.name for label in labels]


def _ast_release_teacher(path: str | Path) -> PublishedTeacher | None:
    """The other published AST files (audioset_16_16_0.4422.pth, speechcommands_10_10_0.9812.pth, ...):
    geometry and statistics from the name (pipeline.models.ast_releases)."""
    release = ast_release(path)
    if release is None:
        return None
    return PublishedTeacher("ast_base", "token", release.n_mels, release.target_length, release.norm_mean,
                            release.norm_std, 2.0, release.num_classes, release.dataset,
                            release.freq_stride, release.time_stride)


def describe(path: str | Path, model: str | None = None, overrides: dict | None = None) -> PublishedTeacher:
    """What a published file is, from its name, with explicit settings taking precedence."""
    known = PUBLISHED.get(Path(path).name) or _ast_release_teacher(path)
    if known is None and not model:
        raise PublishedTeacherError(
            f"{path}: not one of the known published checkpoints ({', '.join(sorted(PUBLISHED))}); pass MODEL=<registry "
            f"name> and its front end (ARGS=\"n_mels=.. target_length=.. norm_mean=.. norm_std=.. norm_divisor=..\")")
    fields = dict(known.__dict__) if known else {"model": model, "pooling": "", "n_mels": 128, "target_length": 1024,
                                                 "norm_mean": -4.2677393, "norm_std": 4.5689974, "norm_divisor": 2.0,
                                                 "num_classes": 0, "trained_on": "unknown", "ast_freq_stride": 0,
                                                 "ast_time_stride": 0, "ast_source_grid": ""}
    if model:
        fields["model"] = model
    fields.update({k: v for k, v in (overrides or {}).items() if k in fields and v is not None})
    return PublishedTeacher(**fields)


def published_state(path: str | Path, vocabulary: str | Path, model: str | None = None,
                    overrides: dict | None = None) -> tuple[dict, object]:
    """(checkpoint dict in this project's teacher format, import report) of a published file, in
    memory: what :func:`import_published_teacher` saves, and what ``predict`` tags with directly."""
    from ..models import create_model

    teacher = describe(path, model, overrides)
    mids, names = read_vocabulary_file(vocabulary)
    if teacher.num_classes and len(mids) != teacher.num_classes:
        raise PublishedTeacherError(f"{vocabulary}: {len(mids)} classes, but {Path(path).name} has "
                                    f"{teacher.num_classes} outputs ({teacher.trained_on} vocabulary expected)")
    strides = {option: value for option, value in (("freq_stride", teacher.ast_freq_stride),
                                                   ("time_stride", teacher.ast_time_stride)) if value}
    net = create_model(teacher.model, num_classes=len(mids), n_mels=teacher.n_mels,
                       target_length=teacher.target_length, pooling=teacher.pooling or None, checkpoint=path,
                       checkpoint_grid=parse_grid(teacher.ast_source_grid) if teacher.ast_source_grid else None,
                       **strides)
    report = net.import_report
    if any("classifier not loaded" in note for note in report.notes):
        raise PublishedTeacherError(f"{path}: its classifier does not match {len(mids)} classes of {vocabulary}; "
                                    "a teacher needs its trained output layer")
    front_end = FrontEndConfig(n_mels=teacher.n_mels, target_length=teacher.target_length,
                               norm_mean=teacher.norm_mean, norm_std=teacher.norm_std,
                               norm_divisor=teacher.norm_divisor)
    config = Config(model=teacher.model, n_mels=teacher.n_mels, target_length=teacher.target_length,
                    ast_freq_stride=teacher.ast_freq_stride, ast_time_stride=teacher.ast_time_stride,
                    norm_mean=teacher.norm_mean, norm_std=teacher.norm_std, norm_divisor=teacher.norm_divisor,
                    dataset=teacher.trained_on, epochs=1)  # not trained here; a valid recipe for checks
    state = {"model": net.state_dict(), "model_name": net.model_name, "model_config": net.model_config,
             "config": config_to_dict(config), "front_end": vars(front_end),
             "vocabulary": {"mids": mids, "names": names}, "activation": "sigmoid", "dataset": teacher.trained_on,
             "epoch": 0, "kind": "imported", "metrics": {},
             "imported_from": {"file": Path(path).name, "sha256": sha256_file(path), "vocabulary": str(vocabulary),
                               "layout": report.layout, "tensors_loaded": len(report.loaded)}}
    return state, report


def import_published_teacher(path: str | Path, vocabulary: str | Path, out_dir: str | Path,
                             model: str | None = None, overrides: dict | None = None) -> Path:
    """Write ``out_dir/checkpoints/final.pt`` (this project's teacher format) from a published file."""
    state, report = published_state(path, vocabulary, model, overrides)
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, out / "checkpoints" / "final.pt")
    (out / "import_report.txt").write_text(report.summary() + "\n")
    return out


def teacher_run_for(teacher: str, dataset: str, labels: str | None = None, model: str | None = None,
                    overrides: dict | None = None, runs_root: str | Path = "runs") -> str:
    """TEACHER as stage one takes it: a run directory or one of our checkpoints is used as given; a
    published checkpoint (weights only) is imported once into ``runs/<dataset>/imported/<name>/``
    (again when the file's sha256 changed) and that run is used."""
    from ..models.checkpoint_import import load_weights_only
    from ..checkpoints import load_checkpoint

    path = Path(teacher)
    if not path.is_file():
        return teacher
    content = load_weights_only(path)
    if isinstance(content, dict) and "model_name" in content and "vocabulary" in content:
        return teacher  # one of ours
    if not labels:
        raise PublishedTeacherError(f"{path}: a checkpoint with weights only (a published file?); pass "
                                    f"LABELS=<the vocabulary file its outputs follow> to import it as a teacher")
    out = Path(runs_root) / dataset / "imported" / path.stem
    final = out / "checkpoints" / "final.pt"
    if final.exists() and load_checkpoint(final).get("imported_from", {}).get("sha256") == sha256_file(path):
        return str(out)
    import_published_teacher(path, labels, out, model=model, overrides=overrides)
    print(f"imported {path.name} as a teacher: {out} ({(out / 'import_report.txt').read_text().splitlines()[0]})")
    return str(out)

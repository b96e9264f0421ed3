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
as_mdl_0.pth, as_mdl_0_wa.pth  efficientnet_b2_psla 128     1056    -4.6476/4.5699  1        527
fsd_mdl_best_single.pth,       efficientnet_b2_psla 128     3000    -4.6476/4.5699  1        200
fsd_mdl_wa.pth
=============================  ===================  ======  ======  ==============  =======  ========

AST: https://github.com/YuanGongND/ast (full AudioSet, stride 10, weight averaging, 0.459 mAP). The
other AST releases (``audioset_<f>_<t>_<mAP>.pth`` with strides 10-16, ``speechcommands_10_10_0.9812.pth``)
are recognised by their names, which give their strides (``pipeline/models/ast_releases.py``).
PSLA: https://github.com/YuanGongND/psla (EfficientNet-B2 with 4-head attention; AudioSet and
FSD50K single and weight-averaged models), imported into ``efficientnet_b2_psla`` with PSLA's own head
(``psla_attention``): its function exactly (tests/models/test_psla_reference.py, against efficientnet_pytorch).
Other files: give MODEL, its options (``pooling``, ``attention_heads``, ``freq_stride`` ...: whatever
the registry lists for that model) and the front end explicitly.

Every way the imported model computes something other than the file's own model is a ``warning:``
line on the console (and in ``import_report.txt``). An imported run records :data:`IMPORTER_VERSION`
and the model options it was built with; a run imported by an older importer, or with other options,
is imported again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoints import save_checkpoint
from ..config import Config, FrontEndConfig, config_to_dict
from ..manifests import sha256_file
from ..manifests.audioset import read_class_labels
from ..manifests.fsd50k import read_vocabulary
from ..manifests.validate import Problems
from ..models.ast_releases import ast_release, parse_grid
from ..models.checkpoint_import import ImportReport


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
    options: dict = field(default_factory=dict)  # the model builder's own options (attention_heads, ...)


# AST's statistics to the digit (ast src/run.py), as the AudioSet recipes carry them: stage two compares
# a teacher's front end with the student's exactly
_AST_AUDIOSET = PublishedTeacher("ast_base", "token", 128, 1024, -4.2677393, 4.5689974, 2.0, 527, "audioset")
_PSLA_AUDIOSET = PublishedTeacher(
    "efficientnet_b2_psla", "psla_attention", 128, 1056, -4.6476, 4.5699, 1.0, 527, "audioset"
)
_PSLA_FSD50K = PublishedTeacher(
    "efficientnet_b2_psla", "psla_attention", 128, 3000, -4.6476, 4.5699, 1.0, 200, "fsd50k"
)

# raised whenever an import of the same file can come out different: 2 = the PSLA files go into
# efficientnet_b2_psla with PSLA's head (1 built efficientnet_b2 with softmax attention and BN eps 1e-5),
# and the AST release records AudioSet's statistics to the digit (1 rounded them to four places)
IMPORTER_VERSION = 2
FRONT_END_KEYS = (
    "n_mels",
    "target_length",
    "norm_mean",
    "norm_std",
    "norm_divisor",
    "ast_freq_stride",
    "ast_time_stride",
)

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
        raise PublishedTeacherError(
            f"{path}: vocabulary file not found (LABELS=class_labels_indices.csv or vocabulary.csv)"
        )
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
    return PublishedTeacher(
        "ast_base",
        "token",
        release.n_mels,
        release.target_length,
        release.norm_mean,
        release.norm_std,
        2.0,
        release.num_classes,
        release.dataset,
        release.freq_stride,
        release.time_stride,
    )


def describe(
    path: str | Path, model: str | None = None, overrides: dict | None = None, options: dict | None = None
) -> PublishedTeacher:
    """What a published file is, from its name, with explicit settings taking precedence: ``overrides``
    the front end, ``options`` the model (``pooling`` and the builder's own options)."""
    known = PUBLISHED.get(Path(path).name) or _ast_release_teacher(path)
    if known is None and not model:
        raise PublishedTeacherError(
            f"{path}: not one of the known published checkpoints ({', '.join(sorted(PUBLISHED))}); pass MODEL=<registry "
            f'name>, its options and its front end (ARGS="pooling=.. n_mels=.. target_length=.. norm_mean=.. '
            f'norm_std=.. norm_divisor=..")'
        )
    fields_ = (
        dataclasses.asdict(known)
        if known
        else {
            "model": model,
            "pooling": "",
            "n_mels": 128,
            "target_length": 1024,
            "norm_mean": -4.2677393,
            "norm_std": 4.5689974,
            "norm_divisor": 2.0,
            "num_classes": 0,
            "trained_on": "unknown",
            "ast_freq_stride": 0,
            "ast_time_stride": 0,
            "ast_source_grid": "",
            "options": {},
        }
    )
    if model and model != fields_["model"]:
        # another architecture than the one this file is known as: its head is that model's own unless given
        fields_.update(model=model, pooling="", options={})
    fields_.update(
        {k: v for k, v in (overrides or {}).items() if k in (*FRONT_END_KEYS, "ast_source_grid") and v is not None}
    )
    options = check_model_options(fields_["model"], options or {})
    if "pooling" in options:
        fields_["pooling"] = options.pop("pooling")
    fields_["options"] = {**fields_["options"], **options}
    return PublishedTeacher(**fields_)


def check_model_options(model: str, options: dict) -> dict:
    """Model options given for a published file, checked against the registry (``pooling`` and the
    builder's own options), with string values turned into the option's type."""
    from ..models import model_entry

    try:
        return model_entry(model).typed_options(options)
    except ValueError as error:
        raise PublishedTeacherError(str(error)) from None


def split_published_args(
    teacher: str | None, model: str | None, named: dict[str, str], config_keys: set[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(model options, the rest) of ``make teacher-logits`` ARGS for a published TEACHER file: the keys
    its model's builder takes go to the import; a key that is neither one of them nor a recipe key is an
    error naming the model's options. For any other teacher every key stays a recipe key."""
    from ..models import model_entry

    if not teacher or not Path(teacher).is_file() or _is_our_checkpoint(Path(teacher)):
        return {}, dict(named)
    name = describe(teacher, model).model
    options = {"pooling"} | set(model_entry(name).options())
    unknown = sorted(k for k in named if k not in options and k not in config_keys)
    if unknown:
        raise PublishedTeacherError(
            f"ARGS {', '.join(unknown)}: neither a recipe key nor an option of {name} (its "
            f"options: {', '.join(sorted(options))})"
        )
    return ({k: v for k, v in named.items() if k in options}, {k: v for k, v in named.items() if k not in options})


def _is_our_checkpoint(path: Path) -> bool:
    from ..models.checkpoint_import import load_weights_only

    content = load_weights_only(path)
    return isinstance(content, dict) and "model_name" in content and "vocabulary" in content


def published_state(
    path: str | Path,
    vocabulary: str | Path,
    model: str | None = None,
    overrides: dict | None = None,
    options: dict | None = None,
) -> tuple[dict, ImportReport]:
    """(checkpoint dict in this project's teacher format, import report) of a published file, in
    memory: what :func:`import_published_teacher` saves, and what ``predict`` tags with directly."""
    from ..models import create_model, import_report_of, model_config_of

    teacher = describe(path, model, overrides, options)
    mids, names = read_vocabulary_file(vocabulary)
    if teacher.num_classes and len(mids) != teacher.num_classes:
        raise PublishedTeacherError(
            f"{vocabulary}: {len(mids)} classes, but {Path(path).name} has "
            f"{teacher.num_classes} outputs ({teacher.trained_on} vocabulary expected)"
        )
    strides = {
        option: value
        for option, value in (("freq_stride", teacher.ast_freq_stride), ("time_stride", teacher.ast_time_stride))
        if value
    }
    net = create_model(
        teacher.model,
        num_classes=len(mids),
        n_mels=teacher.n_mels,
        target_length=teacher.target_length,
        pooling=teacher.pooling or None,
        checkpoint=path,
        checkpoint_grid=parse_grid(teacher.ast_source_grid) if teacher.ast_source_grid else None,
        **{**strides, **teacher.options},
    )
    report = import_report_of(net)
    if any("classifier not loaded" in note for note in report.notes):
        raise PublishedTeacherError(
            f"{path}: its classifier does not match {len(mids)} classes of {vocabulary}; "
            "a teacher needs its trained output layer"
        )
    front_end = FrontEndConfig(
        n_mels=teacher.n_mels,
        target_length=teacher.target_length,
        norm_mean=teacher.norm_mean,
        norm_std=teacher.norm_std,
        norm_divisor=teacher.norm_divisor,
    )
    config = Config(
        model=teacher.model,
        n_mels=teacher.n_mels,
        target_length=teacher.target_length,
        ast_freq_stride=teacher.ast_freq_stride,
        ast_time_stride=teacher.ast_time_stride,
        norm_mean=teacher.norm_mean,
        norm_std=teacher.norm_std,
        norm_divisor=teacher.norm_divisor,
        dataset=teacher.trained_on,
        epochs=1,
    )  # not trained here; a valid recipe for checks
    if model_config_of(net).get("pooling") in ("mean", "attention", "psla_attention"):
        config = dataclasses.replace(config, pooling=model_config_of(net)["pooling"])
    state = {
        "model": net.state_dict(),
        "model_name": net.model_name,
        "model_config": net.model_config,
        "config": config_to_dict(config),
        "front_end": vars(front_end),
        "vocabulary": {"mids": mids, "names": names},
        "activation": "sigmoid",
        "dataset": teacher.trained_on,
        "epoch": 0,
        "kind": "imported",
        "metrics": {},
        "imported_from": {
            "file": Path(path).name,
            "sha256": sha256_file(path),
            "vocabulary": str(vocabulary),
            "layout": report.layout,
            "tensors_loaded": len(report.loaded),
            "importer_version": IMPORTER_VERSION,
            "request": _request(model, overrides, options),
            "warnings": list(report.warnings),
        },
    }
    return state, report


def import_published_teacher(
    path: str | Path,
    vocabulary: str | Path,
    out_dir: str | Path,
    model: str | None = None,
    overrides: dict | None = None,
    options: dict | None = None,
) -> Path:
    """Write ``out_dir/checkpoints/final.pt`` (this project's teacher format) from a published file."""
    state, report = published_state(path, vocabulary, model, overrides, options)
    out = Path(out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, out / "checkpoints" / "final.pt")
    (out / "import_report.txt").write_text(report.summary() + "\n")
    return out


def _request(model: str | None, overrides: dict | None, options: dict | None) -> dict:
    """What the user asked for, as plain values: an import is reused only for the same request."""
    return {
        "model": model or "",
        "front_end": {
            k: float(v) for k, v in sorted((overrides or {}).items()) if k in FRONT_END_KEYS and v is not None
        },
        "source_grid": str((overrides or {}).get("ast_source_grid") or ""),
        "options": {k: str(v) for k, v in sorted((options or {}).items())},
    }


def _stale_reason(imported: dict, path: Path, request: dict) -> str:
    """Why an earlier import of ``path`` cannot be reused ("" when it can)."""
    if imported.get("sha256") != sha256_file(path):
        return "the file changed"
    if imported.get("importer_version") != IMPORTER_VERSION:
        return (
            f"it was imported by importer version {imported.get('importer_version', 1)}, this is version "
            f"{IMPORTER_VERSION}"
        )
    if imported.get("request") != request:
        return "it was imported with other model options or front end"
    return ""


def teacher_run_for(
    teacher: str,
    dataset: str,
    labels: str | None = None,
    model: str | None = None,
    overrides: dict | None = None,
    runs_root: str | Path = "runs",
    options: dict | None = None,
) -> str:
    """TEACHER as stage one takes it: a run directory or one of our checkpoints is used as given; a
    published checkpoint (weights only) is imported into ``runs/<dataset>/imported/<name>/`` and that
    run is used. The import is redone when the file, the importer (:data:`IMPORTER_VERSION`) or the
    request (MODEL, its options, the front end) changed; its warnings are printed every time."""
    from ..checkpoints import load_checkpoint

    path = Path(teacher)
    if not path.is_file():
        return teacher
    if _is_our_checkpoint(path):
        return teacher  # one of ours
    if not labels:
        raise PublishedTeacherError(
            f"{path}: a checkpoint with weights only (a published file?); pass "
            f"LABELS=<the vocabulary file its outputs follow> to import it as a teacher"
        )
    out = Path(runs_root) / dataset / "imported" / path.stem
    final = out / "checkpoints" / "final.pt"
    request = _request(model, overrides, options)
    if final.exists():
        imported = load_checkpoint(final).get("imported_from", {})
        stale = _stale_reason(imported, path, request)
        if not stale:
            _print_warnings(path, imported.get("warnings", []))
            return str(out)
        print(f"importing {path.name} again into {out}: {stale}")
    import_published_teacher(path, labels, out, model=model, overrides=overrides, options=options)
    print(f"imported {path.name} as a teacher: {out} ({(out / 'import_report.txt').read_text().splitlines()[0]})")
    _print_warnings(path, load_checkpoint(final)["imported_from"]["warnings"])
    return str(out)


def _print_warnings(path: Path, warnings: list[str]) -> None:
    import sys

    for warning in warnings:
        print(f"warning: {path.name}: {warning}", file=sys.stderr)

"""Load weights from a checkpoint file into a model built by :func:`pipeline.models.create_model`.

Three layouts are recognised from the keys:

- ``ours``: a dict with a ``"model"`` state dict (our training checkpoints), or a bare state dict;
- ``ast``: the published AST checkpoints, ``module.v.*`` (the timm ViT) and ``module.mlp_head.*``. Our
  AST uses the same names, so once ``module.`` is dropped they match one to one;
- ``psla``: PSLA's EfficientNet checkpoints, ``module.effnet.*`` / ``module.attention.*``, translated
  by :mod:`pipeline.models.psla_layout`.

Rules: everything outside the classifier must be present with the right shape, and nothing may be
left over (except the ImageNet heads AST files carry), or the import fails listing the offending keys (a half-loaded teacher would silently produce wrong logits). The one
exception is AST's positional embedding, cut or interpolated when the patch grid differs (another
``target_length`` or ``n_mels``; a common failure, e.g. https://github.com/YuanGongND/ast/issues/28 and
https://github.com/YuanGongND/ast/issues/118). The classifier loads only when its shapes match (same
number of classes); otherwise it stays at its initialisation and the report says so.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .ast import PREFIX_TOKENS, AudioSpectrogramTransformer, patch_grid
from .ast_releases import ast_release
from .psla_layout import is_psla_layout, translate_psla_state

# the published AST checkpoints keep timm's 1000-class ImageNet heads although AST never calls them
UNUSED_PREFIXES = ("v.head.", "v.head_dist.")


class CheckpointImportError(ValueError):
    """The checkpoint cannot be loaded into this model; the message lists the offending keys."""


@dataclass
class ImportReport:
    path: str
    layout: str  # ours | ast | psla
    loaded: list[str] = field(default_factory=list)  # model keys set from the checkpoint
    skipped: dict[str, str] = field(default_factory=dict)  # checkpoint key -> why it was not used
    left_at_init: list[str] = field(default_factory=list)  # model keys the checkpoint did not set
    interpolated: dict[str, str] = field(default_factory=dict)  # model key -> "source grid -> target grid"
    notes: list[str] = field(default_factory=list)
    # the ways the built model computes something other than the checkpoint's own model: each one is
    # printed as a `warning:` line, never only written to a report (a wrong teacher is silent otherwise)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"{self.path} ({self.layout} layout): {len(self.loaded)} tensors loaded, "
            f"{len(self.skipped)} skipped, {len(self.left_at_init)} left at initialisation"
            + (f", {len(self.warnings)} warning(s)" if self.warnings else "")
        ]
        lines += [f"  resized {key}: {how}" for key, how in self.interpolated.items()]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)

    def print_warnings(self, file=None) -> None:
        """Each warning as one `warning: <file>: ...` line on stderr."""
        import sys

        for warning in self.warnings:
            print(f"warning: {Path(self.path).name}: {warning}", file=file or sys.stderr)


# the one-line conversion of a trusted legacy checkpoint (docs/reliability.md): keep its tensors only
CONVERT_COMMAND = (
    "python -c \"import sys, torch; c = torch.load(sys.argv[1], map_location='cpu', weights_only=False); "
    "s = c.get('model', c.get('state_dict', c)) if isinstance(c, dict) else c.state_dict(); "
    'torch.save({k: v for k, v in s.items() if torch.is_tensor(v)}, sys.argv[2])" TRUSTED.pt OUT.pt'
)


class UnsafeCheckpoint(CheckpointImportError):
    """The file holds pickled Python objects that only a full (code-running) unpickle could read."""


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since 1.6: a zip holding <name>/data.pkl and tensor files
PICKLE_PROTOCOL_2_PLUS = 0x80  # the first byte of a pickle of protocol >= 2 (torch's legacy format too)


def _not_a_checkpoint(path: str | os.PathLike) -> str:
    """Why a file cannot be a torch checkpoint at all, from its first bytes ("" when it may be one).

    Only a real pickle can hold Python objects; an empty, truncated, text or random file must never
    be answered with advice to unpickle it in full."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        return "not a checkpoint: empty (0 bytes)"
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError) as error:
            return f"not a PyTorch file: a broken or truncated zip archive ({_first_line(error)})"
        if not any(name.endswith("/data.pkl") or name == "data.pkl" for name in names):
            return f"not a PyTorch file: a zip archive without torch's data.pkl (holds {names[:3]})"
        return ""
    if head[0] == PICKLE_PROTOCOL_2_PLUS:
        return ""
    if head.startswith(b"\x93NUMPY"):
        return "not a PyTorch file: a NumPy .npy array"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not a PyTorch file: it is text"
    return f"not a PyTorch file: neither torch's zip format nor a pickle (starts with {head[:8].hex()})"


def _first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its type name (some raise with none)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0][:160] if lines else type(error).__name__


def load_weights_only(path: str | os.PathLike) -> object:
    """``torch.load(weights_only=True)``, the only way this project reads a .pt file: tensors and plain
    containers load, anything else (a class, a callable) is refused and never executed. A file that is
    not a checkpoint at all (empty, text, random bytes, another zip) is named as such first."""
    try:
        reason = _not_a_checkpoint(path)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise CheckpointImportError(f"{path}: not readable ({_first_line(error)})") from None
    if reason:
        raise CheckpointImportError(f"{path}: {reason}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only load failed" not in str(error).lower():  # a pickle broken off, not a refused object
            raise CheckpointImportError(
                f"{path}: not a readable checkpoint: a damaged pickle ({_first_line(error)})"
            ) from None
        raise UnsafeCheckpoint(
            f"{path}: refused: it holds Python objects beyond tensors and plain values, and loading them could run "
            f"code; if you trust the file, convert it once with {CONVERT_COMMAND}"
        ) from None
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as error:
        raise CheckpointImportError(
            f"{path}: not a readable checkpoint, truncated or damaged ({_first_line(error)})"
        ) from None


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict, list[str]]:
    """(state dict with any DataParallel ``module.`` prefix removed, the rest of the file, notes)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    obj = load_weights_only(path)
    notes: list[str] = []
    meta: dict = {}
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        state, meta = obj["model"], {k: v for k, v in obj.items() if k != "model"}
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        state, meta = obj["state_dict"], {k: v for k, v in obj.items() if k != "state_dict"}
    elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    else:
        shown = sorted(obj)[:10] if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointImportError(f"{path}: not a state dict nor a dict with a 'model' state dict (found {shown})")
    state = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state.items()}
    return state, meta, notes


def _classifier_keys(model: nn.Module, model_state: dict) -> set[str]:
    prefixes = getattr(model, "classifier_prefixes", ())
    return {k for k in model_state if k.startswith(tuple(prefixes))}


def _source_grid(tokens: int, meta: dict, source_grid: tuple[int, int] | None, path: str) -> tuple[int, int] | None:
    """The patch grid of a checkpoint's position table, from the file alone: an explicit grid, our
    checkpoints' recorded geometry, or a published AST file's name. None when none of them says."""
    patches = tokens - PREFIX_TOKENS
    config = meta.get("model_config") or {}
    geometry = [config.get(k, 10) for k in ("n_mels", "target_length", "freq_stride", "time_stride")]
    release = ast_release(path)
    if source_grid is not None:
        grid, source = (source_grid[0], source_grid[1]), "the given grid"
    elif "n_mels" in config and "target_length" in config and all(type(v) is int and v > 0 for v in geometry):
        grid, source = patch_grid(*geometry), "the checkpoint's model_config"
    elif release is not None:
        grid = release.grid
        source = (
            f"its name (stride {release.freq_stride}x{release.time_stride} on {release.n_mels}x{release.target_length})"
        )
    else:
        return None
    if grid[0] * grid[1] != patches:
        raise CheckpointImportError(
            f"{path}: its position table holds {patches} patches, but {source} says "
            f"{grid[0]}x{grid[1]} = {grid[0] * grid[1]}"
        )
    return grid


def _match(
    model: nn.Module,
    state: dict,
    meta: dict,
    report: ImportReport,
    source_grid: tuple[int, int] | None,
    fresh: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    model_state = model.state_dict()
    classifier = _classifier_keys(model, model_state)
    classifier_fits = all(k in state and state[k].shape == model_state[k].shape for k in classifier)
    incoming: dict[str, torch.Tensor] = {}
    missing: list[str] = []
    mismatched: list[str] = []
    unexpected = [f"unexpected {k}" for k in state if k not in model_state and not k.startswith(UNUSED_PREFIXES)]
    for key, target in model_state.items():
        if (fresh and key.startswith(fresh)) or (key in classifier and not classifier_fits):
            report.left_at_init.append(key)
        elif key not in state:
            # BatchNorm counters are absent from older checkpoints and carry no learned value
            (report.left_at_init if key.endswith("num_batches_tracked") else missing).append(key)
        elif (
            key == "v.pos_embed"
            and isinstance(model, AudioSpectrogramTransformer)
            and state[key].shape[2] == target.shape[2]
        ):
            grid = _source_grid(state[key].shape[1], meta, source_grid, report.path)
            if grid is None and state[key].shape != target.shape:
                raise CheckpointImportError(
                    f"{report.path}: cannot tell the patch grid of its {state[key].shape[1] - PREFIX_TOKENS}-patch "
                    f"position table (the model needs {model.grid[0]}x{model.grid[1]}): give the file its published "
                    f"name (<dataset>_<fstride>_<tstride>_<score>.pth) or pass the grid (ast_source_grid=FREQxTIME)"
                )
            if grid is None or tuple(grid) == tuple(model.grid):
                incoming[key] = state[key]
            else:
                incoming[key] = model.resize_pos_embed(state[key], grid)
                report.interpolated[key] = f"{grid[0]}x{grid[1]} -> {model.grid[0]}x{model.grid[1]} patches"
        elif state[key].shape == target.shape:
            incoming[key] = state[key]
        else:
            mismatched.append(f"{key}: checkpoint {tuple(state[key].shape)}, model {tuple(target.shape)}")
    if missing or mismatched or unexpected:
        listed = [f"missing {k}" for k in missing[:20]] + mismatched[:20] + unexpected[:20]
        more = len(missing) + len(mismatched) + len(unexpected) - len(listed)
        raise CheckpointImportError(
            f"{report.path} ({report.layout} layout) does not fit {getattr(model, 'model_name', type(model).__name__)}: "
            + "; ".join(listed)
            + (f"; and {more} more" if more > 0 else "")
        )
    if classifier and not classifier_fits and not any(k.startswith(fresh) for k in classifier if fresh):
        shapes = {k: tuple(state[k].shape) for k in classifier if k in state}
        report.notes.append(
            f"classifier not loaded (checkpoint {shapes or 'has none'}, model "
            f"{ {k: tuple(model_state[k].shape) for k in classifier} }): left at initialisation"
        )
    for key in state:
        if key not in model_state:
            report.skipped[key] = "the ViT's ImageNet head, which AST never used"
    report.loaded = sorted(incoming)
    return incoming


# fine-tuning from a published AST file starts from a new head, LayerNorm included, as upstream's
# ASTModel(audioset_pretrain=True) does (it builds a fresh mlp_head after loading the release)
AST_FINE_TUNE_FRESH = ("mlp_head.",)


def load_pretrained_checkpoint(
    model: nn.Module, path: str | os.PathLike, source_grid: tuple[int, int] | None = None, fine_tune: bool = False
) -> ImportReport:
    """Load an AST, PSLA or own checkpoint into ``model`` in place and report what happened.

    ``source_grid`` (frequency patches, time patches) gives the patch grid of an AST checkpoint's
    position table when neither the file's name (a published release) nor its metadata says it.
    ``fine_tune`` (INIT=): a published AST file's whole ``mlp_head`` stays at its initialisation.
    """
    state, meta, notes = read_state_dict(path)
    warnings: list[str] = []
    if is_psla_layout(state):
        layout = "psla"
        state, skipped, warnings = translate_psla_state(state, model)
    else:
        # a bare state dict in the ViT naming is a published AST file; ours come wrapped with metadata
        layout = "ast" if not meta and any(k.startswith("v.") for k in state) else "ours"
        skipped = {}
    fresh: tuple[str, ...] = ()
    if fine_tune and layout == "ast":
        fresh = AST_FINE_TUNE_FRESH
        skipped.update({k: "re-created for fine-tuning, as upstream's AST does" for k in state if k.startswith(fresh)})
        state = {k: v for k, v in state.items() if not k.startswith(fresh)}
        notes.append("mlp_head (LayerNorm and Linear) re-created for fine-tuning, as upstream's AST does")
    report = ImportReport(path=str(path), layout=layout, notes=notes, warnings=warnings)
    incoming = _match(model, state, meta, report, source_grid, fresh)
    report.skipped.update(skipped)
    merged = model.state_dict()
    merged.update(incoming)
    model.load_state_dict(merged, strict=True)
    return report

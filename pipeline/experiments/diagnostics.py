"""What a store's soft targets carry: how good the teacher is, and how far its targets are from the
class prior that any "teacher" with no knowledge of the clips would give.

A teacher trained with a student's budget can score well above chance and still hand out targets
that sit on the prior: then KD acts as label smoothing towards the prior, not as knowledge. These
figures make that visible before a student is trained (``make inspect``) and beside every grid row:

* teacher mAP (or accuracy) on the train clips and on held-out clips (val + eval); a large gap means
  in-sample targets near the hard labels (cross-fitting exists for that);
* the mean target on positive and on negative (clip, class) entries of the train clips, beside the
  same figures for the constant-prior control; their difference is the targets' *separation*;
* the mean target entropy, beside the prior's.

A warning is printed when the teacher's separation is within ``margin`` of the prior's.
"""

from __future__ import annotations

import numpy as np

from ..manifests import Manifest
from ..metrics import evaluate_predictions
from ..training.dataset import multi_hot
from .controls import label_prior, prior_logits

DEFAULT_MARGIN = 0.1


def _activate(logits: np.ndarray, activation: str, tau: float) -> np.ndarray:
    z = logits.astype(np.float64) / tau
    if activation == "softmax":
        z = z - z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))


def _entropy(p: np.ndarray, activation: str) -> float:
    """Mean per-clip entropy in nats: of the class distribution (softmax), or the mean binary entropy
    over classes (sigmoid)."""
    q = np.clip(p, 1e-12, 1.0)
    if activation == "softmax":
        return float(-(q * np.log(q)).sum(axis=1).mean())
    r = np.clip(1.0 - p, 1e-12, 1.0)
    return float(-(q * np.log(q) + r * np.log(r)).mean())


def _targets_matrix(manifest: Manifest, clips) -> np.ndarray:
    index = {mid: i for i, mid in enumerate(manifest.mids)}
    return (
        np.stack([multi_hot(c, index, manifest.num_classes) for c in clips]).astype(np.int64)
        if clips
        else np.zeros((0, manifest.num_classes), dtype=np.int64)
    )


def _score(logits: np.ndarray, y: np.ndarray, single_label: bool) -> dict | None:
    if len(y) == 0 or not y.any():
        return None
    metrics = evaluate_predictions(logits, y, single_label)
    return {"map": metrics["map"], "accuracy": metrics["accuracy"], "clips": int(len(y))}


def soft_target_diagnostics(
    table, manifest: Manifest, fold: int | None = None, tau: float = 1.0, margin: float = DEFAULT_MARGIN
) -> dict:
    """Diagnostics of a LogitTable's targets against ``manifest``'s labels (clips joined by id)."""
    rows = table.rows([c.clip_id for c in manifest.clips])
    usable = rows >= 0
    usable[usable] = table.valid_rows(rows[usable])
    by_split: dict[str, list[int]] = {"train": [], "held_out": []}
    train_ids = {c.clip_id for c in manifest.select("train", fold)}
    held_ids = {c.clip_id for c in manifest.select("val", fold)} | {c.clip_id for c in manifest.select("eval", fold)}
    for i, clip in enumerate(manifest.clips):
        if usable[i] and clip.labels:
            if clip.clip_id in train_ids:
                by_split["train"].append(i)
            elif clip.clip_id in held_ids:
                by_split["held_out"].append(i)
    activation, single_label = table.activation, manifest.single_label
    out: dict = {"activation": activation, "tau": tau, "margin": margin, "cross_fitted": table.cross_fitted}
    for name, indices in by_split.items():
        clips = [manifest.clips[i] for i in indices]
        logits = table.logits_for(rows[indices]) if indices else np.zeros((0, manifest.num_classes))
        out[f"teacher_{name}"] = _score(logits, _targets_matrix(manifest, clips), single_label)
    train = [manifest.clips[i] for i in by_split["train"]]
    if not train:
        out["warning"] = "no labelled train clip has teacher logits: nothing to diagnose"
        return out
    y = _targets_matrix(manifest, train).astype(bool)
    train_logits = table.logits_for(rows[by_split["train"]])
    p = _activate(train_logits, activation, tau)
    prior_row = _activate(prior_logits(label_prior(manifest, fold), activation)[None, :], activation, tau)
    prior = np.broadcast_to(prior_row, p.shape)
    out["targets"] = {
        "positives": float(p[y].mean()),
        "negatives": float(p[~y].mean()),
        "entropy": _entropy(p, activation),
    }
    out["prior"] = {
        "positives": float(prior[y].mean()),
        "negatives": float(prior[~y].mean()),
        "entropy": _entropy(prior_row, activation),
    }
    out["gradient_ratio"] = gradient_balance(
        _activate(train_logits, "sigmoid", tau),
        _activate(train_logits, "softmax", tau),
        y.astype(float),
        label_prior(manifest, fold),
        single_label,
    )
    separation = out["targets"]["positives"] - out["targets"]["negatives"]
    prior_separation = out["prior"]["positives"] - out["prior"]["negatives"]
    out["separation"], out["prior_separation"] = separation, prior_separation
    if separation - prior_separation < margin:
        out["warning"] = (
            f"soft targets are close to the class prior (separation {separation:.3f} vs the "
            f"prior's {prior_separation:.3f}, margin {margin}): KD will mostly act as label "
            f"smoothing towards the prior; train the teacher longer or check it"
        )
    return out


def gradient_balance(
    teacher_probs_sigmoid: np.ndarray,
    teacher_probs_softmax: np.ndarray,
    labels: np.ndarray,
    prior: np.ndarray,
    single_label: bool,
) -> dict[str, float]:
    """How strongly each KD form pulls against the task loss: mean |grad KD| / mean |grad task| with
    respect to the student logits, for a student still at the class prior (the start of training).

    The task loss is BCE averaged over classes (multi-label) or cross-entropy (single-label); ``bce``
    KD is BCE averaged over classes, ``kl`` KD is a KL divergence summed over classes. A sum over C
    classes next to a mean over C classes is C times larger per class, so with ``kd_lambda=0.5`` the
    two terms are not an even split; this ratio says by how much, on this store's actual targets.
    """
    p = np.clip(prior, 1e-4, 1 - 1e-4)
    student_sigmoid = np.broadcast_to(p, labels.shape)
    student_softmax = np.broadcast_to(p / p.sum(), labels.shape)
    classes = labels.shape[1]
    if single_label:
        task = student_softmax - labels
    else:
        task = (student_sigmoid - labels) / classes
    kd = {"bce": (student_sigmoid - teacher_probs_sigmoid) / classes, "kl": student_softmax - teacher_probs_softmax}
    task_norm = float(np.linalg.norm(task, axis=1).mean())
    return {kind: float(np.linalg.norm(grad, axis=1).mean()) / task_norm for kind, grad in kd.items()}


def format_diagnostics(d: dict) -> str:
    """The diagnostics as a few human lines (make inspect, the grid report)."""

    def score(s):
        return "n/a" if not s else f"mAP {s['map']:.4f}, accuracy {s['accuracy']:.4f} ({s['clips']} clips)"

    lines = [
        f"teacher on train clips{' (out-of-fold: cross-fitted)' if d['cross_fitted'] else ''}: "
        f"{score(d.get('teacher_train'))}",
        f"teacher on held-out clips (val + eval): {score(d.get('teacher_held_out'))}",
    ]
    if "targets" in d:
        t, p = d["targets"], d["prior"]
        lines.append(
            f"mean target (tau={d['tau']:g}, {d['activation']}): positives {t['positives']:.3f}, "
            f"negatives {t['negatives']:.3f}, entropy {t['entropy']:.3f} nats; the class prior gives "
            f"{p['positives']:.3f} / {p['negatives']:.3f} / {p['entropy']:.3f}"
        )
    if "gradient_ratio" in d:
        g = d["gradient_ratio"]
        lines.append(
            f"KD / task gradient at a prior-level student (kd_lambda weighs these): kd_loss=bce {g['bce']:.2f}x, "
            f"kd_loss=kl {g['kl']:.2f}x"
        )
    if d.get("warning"):
        lines.append("warning: " + d["warning"])
    return "\n".join(lines)


def soft_target_report(
    store, dataset: str, fold: int | None = None, tau: float = 1.0, digest: str | None = None, verify: bool = True
) -> str:
    """`make inspect`'s second half: what the store's soft targets carry against DATASET's labels (an
    empty string when the dataset has no manifest here). ``verify=False`` when the caller has just
    checked the store's checksums (and ``digest``), so a large store is not hashed twice."""
    from ..manifests import load_manifest
    from ..paths import manifest_dir
    from ..store import LogitTable

    folder = manifest_dir(dataset)
    if not (folder / "dataset.json").exists():
        return ""
    manifest = load_manifest(folder)
    table = LogitTable.open(store, load_views=False, verify=verify, expected_digest=digest if verify else None)
    if table.vocabulary_mids != manifest.mids:
        return f"\nsoft targets: not scored (the store's vocabulary is not {manifest.name}'s)"
    return f"\nsoft targets against {manifest.name}'s labels:\n" + format_diagnostics(
        soft_target_diagnostics(table, manifest, fold=fold, tau=tau)
    )


def grid_diagnostics(
    results: dict, manifest: Manifest, fold: int | None = None
) -> tuple[dict[str, str], dict[str, list[int]]]:
    """For a finished grid's ``results`` ({cell: {seed: summary}}): ({store: formatted soft-target
    diagnostics} for every store its KD cells read, {class group: vocabulary indices} when the
    vocabulary is the embedded corpus's, else {})."""
    from pathlib import Path

    from ..store import LogitTable
    from ..synthetic_corpus import class_groups

    stores = sorted(
        {summary["logits"] for runs in results.values() for summary in runs.values() if summary.get("logits")}
    )
    diagnostics = {}
    for store in stores:
        if Path(store).exists():
            table = LogitTable.open(store, load_views=False)
            diagnostics[store] = format_diagnostics(soft_target_diagnostics(table, manifest, fold=fold))
    return diagnostics, class_groups(manifest.mids)

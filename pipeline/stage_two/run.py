"""Stage two: join a teacher's cached logits (or a live teacher) to a training set, then train.

:func:`kd_source` builds the one value training receives (:class:`pipeline.training.kd_source.KDSource`);
:func:`train_student` builds it for every fold a run trains and hands it to
:func:`pipeline.training.run_training`. Training knows the record, never this module.

Checks before the first step: the store speaks the manifest's vocabulary (same mids in the same
order, or an explicit remap by mid), its front end is compatible with the student's, and which
training clips it covers. MISSING=error stops with the list of uncovered clips; MISSING=mask trains
them with zero KD weight. Unlabelled clips (empty labels) train on the KD term alone.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config, FrontEndConfig
from ..features import front_end_dict
from ..manifests import Clip, Manifest, load_manifest, manifest_hashes
from ..manifests.vocabulary import class_map_for
from ..paths import LATEST_FILE, MANIFESTS_ROOT, RUNS_ROOT, STORES_ROOT, latest_store, manifest_dir, run_dir, store_dir
from ..training.kd_source import KDSource, StoreRows
from ..training.losses import KDLoss, resolve_kd_loss, single_label_task


class DistillError(ValueError):
    """A store or teacher that cannot teach this student; the message says what differs."""


@dataclass
class Coverage:
    train_clips: int
    with_logits: int
    unlabelled: int
    missing: list[str]
    audio_differs: list[str] = field(default_factory=list)  # in the store by id, other audio (not joined)
    by_content: int = 0  # joined by audio fingerprint under another store id (JOIN=fingerprint)
    audio_checked: bool = True  # False: store or manifest without fingerprints
    clean_views: int = 0  # KD=replay views whose mixup partner is unavailable: clean clip instead
    other_encoding: int | None = None  # JOIN=recording: joined by id with other audio (another encoding)
    bad_values: list[str] = field(default_factory=list)  # valid rows holding NaN/inf or float16-saturated logits

    def line(self) -> str:
        audio = (
            f"audio: {len(self.audio_differs)} differ from the store's, {self.by_content} joined by content"
            if self.audio_checked
            else "audio not checked (no fingerprints in the store or the manifest)"
        )
        if self.other_encoding is not None and self.audio_checked:
            audio = (
                f"joined by id (JOIN=recording): {self.with_logits - self.other_encoding} with the store's audio "
                f"fingerprint, {self.other_encoding} another encoding of the recording"
            )
        return (
            f"coverage: {self.with_logits}/{self.train_clips} train clips have teacher logits "
            f"({100.0 * self.with_logits / max(self.train_clips, 1):.1f}%), {len(self.missing)} missing, "
            f"{self.unlabelled} unlabelled (KD only); "
            f"{len(self.bad_values)} with non-finite or saturated logits; {audio}"
            + (
                f"; {self.clean_views} replay views without their partner use the clean clip"
                if self.clean_views
                else ""
            )
        )


def check_front_end(store_front_end: dict, student: FrontEndConfig, mode: str, source: str) -> list[str]:
    """Replay rebuilds the teacher's exact input, so every field must match; clean logits only need
    the same audio (sample rate). Returns warnings for the differences that are allowed."""
    mine = front_end_dict(student)
    differences = [
        key for key in ("sample_rate", "fbank", "target_length", "norm") if store_front_end.get(key) != mine.get(key)
    ]
    if not differences:
        return []
    if store_front_end.get("sample_rate") != mine["sample_rate"] or mode in ("replay", "online"):
        raise DistillError(
            f"{source}: front end differs from the student's in {differences} "
            f"(teacher {[store_front_end.get(k) for k in differences]} vs student "
            f"{[mine[k] for k in differences]}); KD={mode} needs identical features"
        )
    return [f"note: teacher front end differs in {differences}; fine for KD=clean (the teacher labelled clean clips)"]


def attach_store(
    config: Config,
    manifest: Manifest,
    manifest_dir: Path,
    train_clips: list[Clip],
    front_end: FrontEndConfig,
    num_workers: int = 0,
) -> tuple[StoreRows, Coverage, list[str]]:
    """The store named by the (per-fold) config joined to `train_clips`, checked; with its coverage
    and the notes to print. Raises DistillError for what cannot teach this student."""
    from ..store import LogitTable
    from ..store.matching import match_clips, replay_partners

    # fold-based data: one store per fold's teacher, e.g. LOGITS=stores/esc50/ast-fold{fold}.zarr
    source = config.logits.format(fold=config.fold) if "{fold}" in config.logits else config.logits
    if not source:
        raise DistillError(
            f"KD={config.kd} needs LOGITS=<store> (no {store_dir(manifest.name) / LATEST_FILE} yet: "
            f"run `make teacher-logits DATASET={manifest.name}` first)"
        )
    table = LogitTable.open(
        source, load_views=config.kd == "replay", verify=config.verify, expected_digest=config.digest or None
    )
    class_map = class_map_for(table.vocabulary_mids, manifest, config.vocab_remap, source)
    notes = check_front_end(table.front_end, front_end, config.kd, source)
    if config.kd == "replay" and table.num_views == 0:
        raise DistillError(f"{source}: KD=replay needs stored views; rebuild the store with VIEWS=K")
    stored_hash = (table.attrs.get("manifest") or {}).get("sha256", {})
    if stored_hash and stored_hash != manifest_hashes(manifest_dir):
        notes.append(
            f"note: {source} was built from another copy of the manifest "
            f"({table.attrs['manifest'].get('name')}); joining by "
            + ("audio fingerprint" if config.join == "fingerprint" else "clip_id")
        )
    try:
        match = match_clips(
            table, [c.clip_id for c in manifest.clips], [c.fingerprint for c in manifest.clips], config.join
        )
    except ValueError as exc:
        raise DistillError(f"{source}: {exc}") from None
    if match.audio_differs or match.by_content:  # look clips up by this manifest's names and content
        table.rejoin({c.clip_id: int(r) for c, r in zip(manifest.clips, match.rows) if r >= 0})
    differs = set(match.audio_differs)
    rows = table.rows([c.clip_id for c in train_clips])
    valid = np.zeros(len(train_clips), dtype=bool)
    present = rows >= 0
    valid[present] = table.valid_rows(rows[present])
    # verify's row check, on the rows this run trains from: a valid row holding NaN/inf or float16's
    # limit is no teacher output (it used to be masked silently, or trained on as 65504)
    bad = np.zeros(len(train_clips), dtype=bool)
    bad[valid] = table.bad_values(rows[valid])
    valid &= ~bad
    train_ids = {c.clip_id for c in train_clips}
    coverage = Coverage(
        len(train_clips),
        int(valid.sum()),
        sum(1 for c in train_clips if not c.labels),
        [
            c.clip_id
            for c, ok, wrong in zip(train_clips, valid, bad)
            if not ok and not wrong and c.clip_id not in differs
        ],
        [c for c in match.audio_differs if c in train_ids],
        sum(1 for c in match.by_content if c in train_ids),
        match.audio_checked,
        bad_values=[c.clip_id for c, wrong in zip(train_clips, bad) if wrong],
    )
    if config.join == "recording":
        joined = {c.clip_id for c, ok in zip(train_clips, valid) if ok}
        coverage.other_encoding = sum(1 for c in match.other_encoding if c in joined)
    if coverage.bad_values and config.missing == "error":
        raise DistillError(
            f"{source}: {len(coverage.bad_values)} train clips marked valid hold non-finite or "
            f"float16-saturated logits (first: {', '.join(coverage.bad_values[:20])}); run `verify` "
            "on the store, or pass MISSING=mask to train them without KD"
        )
    if coverage.audio_differs and config.missing == "error":
        raise DistillError(
            f"{source}: {len(coverage.audio_differs)} train clips have the store's clip id but other "
            f"audio (fingerprints differ; first: {', '.join(coverage.audio_differs[:20])}); the "
            "store was built from another copy: pass MISSING=mask to train them without KD, or "
            "JOIN=fingerprint to join by content, or JOIN=recording when the other copy holds "
            "another encoding of the same recordings (AudioSet as mp3 vs WAV)"
        )
    if coverage.missing and config.missing == "error":
        shown = ", ".join(coverage.missing[:20])
        raise DistillError(
            f"{source}: {len(coverage.missing)} train clips have no valid teacher logits "
            f"(first: {shown}); rebuild the store or pass MISSING=mask to train them without KD"
        )
    clean_views = None
    if config.kd == "replay":
        alias, lost = replay_partners(table, np.where(valid, rows, -1), manifest.clips, config.join)
        table.rejoin(table.index, alias)
        lost_clips = [
            (train_clips[i].clip_id, int(np.flatnonzero(lost[i])[0])) for i in np.flatnonzero(lost.any(axis=1))
        ]
        if lost_clips and config.missing == "error":
            shown = ", ".join(f"{clip} (view {k})" for clip, k in lost_clips[:20])
            raise DistillError(
                f"{source}: KD=replay: {len(lost_clips)} train clips have stored views whose mixup "
                f"partner this manifest lacks or holds with other audio (first: {shown}); pass "
                "MISSING=mask to train those views on the clean clip and its clean logits"
            )
        coverage.clean_views, clean_views = int(lost.sum()), lost
    rows = np.where(valid, rows, -1)
    if num_workers > 0:
        table = table.share()  # workers map one copy of the logits instead of each holding its own
    return (
        StoreRows(mode=config.kd, table=table, rows=rows, class_map=class_map, clean_views=clean_views),
        coverage,
        notes,
    )


def attach_online_teacher(config: Config, manifest: Manifest, front_end: FrontEndConfig):
    """KD=online: (the frozen teacher, its output activation); the teacher runs on the student's own
    batch (the paper's method)."""
    from ..checkpoints import model_from_checkpoint

    if not config.teacher:
        raise DistillError("KD=online needs TEACHER=<run dir or checkpoint>")
    path = config.teacher.format(fold=config.fold) if "{fold}" in config.teacher else config.teacher
    model, _, ckpt = model_from_checkpoint(path)
    vocabulary = ckpt.get("vocabulary", {}).get("mids", [])
    if class_map_for(vocabulary, manifest, False, config.teacher) is not None:
        raise DistillError(f"{config.teacher}: online teachers must share the student's vocabulary")
    check_front_end(front_end_dict(FrontEndConfig(**ckpt["front_end"])), front_end, "online", config.teacher)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, ckpt.get("activation")


def kd_source(
    config: Config,
    manifest: Manifest,
    manifest_dir: Path,
    train_clips: list[Clip],
    front_end: FrontEndConfig,
    log=print,
) -> KDSource:
    """Stage two's teacher for one model (``config`` is the fold's): the store or the online teacher
    the config names, checked, its coverage printed, and the KD loss resolved against the label type
    and the teacher's activation (``kd_loss=auto``)."""
    single_label = single_label_task(config.loss, manifest.single_label)
    if config.kd == "online":
        teacher, activation = attach_online_teacher(config, manifest, front_end)
        loss = _resolved_loss(config, single_label, activation, config.teacher, log)
        return KDSource(
            "online",
            loss,
            online_teacher=teacher,
            summary={"kd": "online", "teacher": config.teacher, "kd_loss": loss.kind},
        )
    store, coverage, notes = attach_store(
        config, manifest, Path(manifest_dir), train_clips, front_end, config.num_workers
    )
    for line in (coverage.line(), *notes):
        log(line)
    loss = _resolved_loss(config, single_label, store.table.activation, config.logits, log)
    return KDSource(
        config.kd,
        loss,
        store=store,
        summary={
            "kd": config.kd,
            "logits": config.logits,
            "kd_loss": loss.kind,
            "store_digest": store.table.digest,
            # what vouches for it: the published digest given (DIGEST=), the one the store
            # records about itself, or nothing (verify=false)
            "store_digest_checked": (
                "pinned" if store.table.pinned else "recorded" if store.table.verified else "not verified"
            ),
            "coverage": coverage.with_logits / max(coverage.train_clips, 1),
            "missing": len(coverage.missing),
        },
    )


def _resolved_loss(config: Config, single_label: bool, activation: str | None, source: str, log) -> KDLoss:
    """The KD loss settings, kd_loss resolved from the label type (auto) and checked against the teacher."""
    kind, warnings = resolve_kd_loss(config.kd_loss, single_label, activation, source)
    for line in warnings:
        log(line)
    return KDLoss.from_config(config, kind)


def train_student(
    dataset: str,
    config: Config,
    run: str,
    fold: int | None = None,
    resume: bool = False,
    manifests_root: str | Path = MANIFESTS_ROOT,
    runs_root: str | Path = RUNS_ROOT,
    progress: bool = True,
    log=print,
) -> dict:
    """Stage two: one student run. ``kd=none`` (``make student LOGITS=none``) is the no-KD student of the
    same recipe and the same code path, which is what the grid's no-KD cells run. Every fold's source
    is built and checked before the first fold trains."""
    from ..training import run_training
    from ..training.runlog import run_log

    if config.digest and config.kd in ("none", "online"):
        raise DistillError(
            f"DIGEST pins a logit store, and KD={config.kd} reads none: pass LOGITS=<store> (or leave DIGEST out)"
        )
    if config.kd == "none":
        return run_training(
            dataset,
            config,
            run,
            fold=fold,
            resume=resume,
            manifests_root=manifests_root,
            runs_root=runs_root,
            progress=progress,
        )
    with run_log(run_dir(dataset, run, runs_root)):  # the join's coverage lines belong in the run's log
        return _train_student(dataset, config, run, fold, resume, manifests_root, runs_root, progress, log)


def _train_student(
    dataset: str,
    config: Config,
    run: str,
    fold: int | None,
    resume: bool,
    manifests_root: str | Path,
    runs_root: str | Path,
    progress: bool,
    log,
) -> dict:
    from ..config_check import check_config
    from ..training import fold_splits, is_finished, run_training

    check_config(config)
    folder = manifest_dir(dataset, manifests_root)
    manifest = load_manifest(folder)
    splits = fold_splits(manifest, run_dir(dataset, run, runs_root), fold, config)
    sources = {}
    for split in splits:
        if resume and is_finished(split.run_dir):
            continue
        fold_config = dataclasses.replace(config, fold=split.fold)
        sources[split.fold] = kd_source(
            fold_config, manifest, folder, split.train, fold_config.front_end(manifest.stats(), manifest.name), log
        )
    # the training runs on exactly the splits the store was joined to
    return run_training(
        dataset,
        config,
        run,
        fold=fold,
        resume=resume,
        manifests_root=manifests_root,
        runs_root=runs_root,
        kd=sources,
        progress=progress,
        planned=(manifest, splits),
    )


def choose_kd_source(
    logits: str | None, kd: str | None, dataset: str, stores_root: str | Path = STORES_ROOT
) -> tuple[str, str]:
    """(kd mode, store path) from what the user typed for ``make student``.

    Nothing given: the store ``make teacher-logits`` last wrote for the dataset, KD=clean (no store
    yet: the no-KD student). ``LOGITS=none`` or ``KD=none``: the no-KD student of the same recipe.
    ``KD=online`` needs no store.
    """
    if kd == "none" or (logits or "").strip().lower() == "none":
        return "none", ""
    if kd == "online":
        return "online", ""
    if not logits:
        logits = latest_store(dataset, stores_root) or ""
    return (kd or ("clean" if logits else "none")), logits

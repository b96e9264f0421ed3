"""StoreRows.read (one store lookup per clip: the view and the teacher's logits), the KDSource
record's checks, and the file layout of pipeline.paths."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.training.kd_source import KDSource, StoreRows
from pipeline.training.losses import KDLoss
from pipeline.views import IDENTITY, View

MIDS = ["/m/a", "/m/b", "/m/c"]


class Table:
    """The LogitTable methods StoreRows uses, over plain arrays, counting the logit reads."""

    def __init__(self, ids, logits, view_logits=None, views=None):
        self.index = {clip_id: row for row, clip_id in enumerate(ids)}
        self.logits, self.view_logits, self.views = logits, view_logits, views or {}
        self.num_views = 0 if view_logits is None else view_logits.shape[1]
        self.vocabulary_mids = MIDS
        self.reads = 0

    def rows(self, clip_ids):
        return np.array([self.index.get(c, -1) for c in clip_ids])

    def logits_for(self, rows):
        self.reads += 1
        out = self.logits[np.maximum(rows, 0)].copy()
        out[np.asarray(rows) < 0] = np.nan
        return out

    def view_logits_for(self, rows, ks):
        self.reads += 1
        return self.view_logits[rows, ks]

    def view_for(self, row, k):
        return self.views[(row, k)]


LOGITS = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [np.nan, np.nan, np.nan]], dtype=np.float32)
MIXED = View(seed=0, view_index=1, partner="b", lam=0.7)


def test_clean_clip_reads_its_row_once():
    table = Table(["a", "b", "bad"], LOGITS)
    read = StoreRows("clean", table, np.array([0, 1, 2])).read(0, 3, lambda: IDENTITY)
    assert read.view == IDENTITY and read.slot == -1 and read.mask == 1.0 and read.lam == 1.0
    assert read.logits.tolist() == [1, 2, 3] and read.partner_logits.tolist() == [0, 0, 0] and table.reads == 1


def test_clean_logits_under_mixup_read_clip_and_partner_together():
    table = Table(["a", "b"], LOGITS[:2])
    read = StoreRows("clean", table, np.array([0, 1])).read(0, 1, lambda: MIXED)
    assert read.view == MIXED and read.lam == pytest.approx(0.7) and read.mask == 1.0
    assert read.logits.tolist() == [1, 2, 3] and read.partner_logits.tolist() == [4, 5, 6]
    assert table.reads == 1  # one lookup for both rows


def test_a_partner_or_row_without_logits_is_masked_never_filled():
    table = Table(["a", "bad"], LOGITS[[0, 2]])
    absent = View(seed=0, view_index=1, partner="elsewhere", lam=0.5)
    read = StoreRows("clean", table, np.array([0, 1])).read(0, 1, lambda: absent)
    assert read.mask == 0.0 and read.partner_logits.tolist() == [0, 0, 0]
    failed = StoreRows("clean", table, np.array([0, 1])).read(1, 1, lambda: IDENTITY)  # a failed (NaN) row
    assert failed.mask == 0.0 and np.isfinite(failed.logits).all()
    missing = StoreRows("clean", table, np.array([-1, 1])).read(0, 1, lambda: MIXED)  # not in the store
    assert missing.mask == 0.0 and missing.view == MIXED and table.reads == 2


def test_replay_takes_the_stored_view_of_the_epoch_and_its_logits():
    stored = {(0, k): View(seed=0, view_index=k, partner="b", lam=0.6) for k in range(2)}
    view_logits = np.arange(12, dtype=np.float32).reshape(2, 2, 3)
    table = Table(["a", "b"], LOGITS[:2], view_logits, stored)
    rows = StoreRows("replay", table, np.array([0, 1]))
    read = rows.read(0, 3, lambda: pytest.fail("replay must not draw a view"))
    assert read.slot == 1 and read.view == stored[(0, 1)] and read.logits.tolist() == [3, 4, 5]
    assert read.lam == 1.0 and read.partner_logits.tolist() == [0, 0, 0]  # the stored logits already mix
    lost = np.array([[False, True], [False, False]])
    fallback = StoreRows("replay", table, np.array([0, 1]), clean_views=lost).read(0, 3, lambda: MIXED)
    assert fallback.view == IDENTITY and fallback.slot == -1 and fallback.logits.tolist() == [1, 2, 3]


def test_the_class_map_puts_the_teacher_classes_in_manifest_order():
    table = Table(["a"], LOGITS[:1])
    read = StoreRows("clean", table, np.array([0]), class_map=np.array([2, 0, 1])).read(0, 1, lambda: IDENTITY)
    assert read.logits.tolist() == [3, 1, 2]


def test_a_kd_source_has_exactly_one_teacher_and_a_known_mode():
    rows = StoreRows("clean", Table(["a"], LOGITS[:1]), np.array([0]))
    with pytest.raises(ValueError, match="either"):
        KDSource("clean", KDLoss("bce"))
    with pytest.raises(ValueError, match="either"):
        KDSource("clean", KDLoss("bce"), store=rows, online_teacher=object())
    with pytest.raises(ValueError, match="mode"):
        KDSource("offline", KDLoss("bce"), store=rows)
    assert KDSource("clean", KDLoss("bce"), store=rows).loss.tau == 1.0


def test_kd_loss_settings_come_from_the_recipe_with_the_resolved_kind():
    from pipeline.config import Config

    config = Config(tau=2.0, tau_student=True, kd_lambda=0.3)
    assert KDLoss.from_config(config, "kl") == KDLoss("kl", 2.0, True, False, 0.3)


def test_latest_store_pointer_and_cross_fitting_record(tmp_path):
    from pipeline.paths import is_crossfit_run, latest_store, read_crossfit, write_crossfit, write_latest_store

    stores = tmp_path / "stores"
    assert latest_store("d", stores) is None
    (tmp_path / "t.zarr").mkdir()
    pointer = write_latest_store("d", tmp_path / "t.zarr", stores)
    assert pointer == stores / "d" / "LATEST" and latest_store("d", stores) == str(tmp_path / "t.zarr")
    (tmp_path / "t.zarr").rmdir()
    assert latest_store("d", stores) is None  # a pointer at a store that is gone is no store
    run = tmp_path / "runs" / "d" / "xfit"
    run.mkdir(parents=True)
    assert read_crossfit(run) is None and not is_crossfit_run(run)
    write_crossfit(run, {"k": 2, "members": [{"run_dir": "member0", "held_out": ["a"]}]})
    assert is_crossfit_run(run) and read_crossfit(run)["members"][0]["held_out"] == ["a"]

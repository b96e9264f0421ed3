"""What of a finished grid may be reused: cells trained on the data and with the recipe they would
get now. Anything else is set aside (renamed), never deleted and never silently reused.

* The data: ``grid-data.json`` records the manifest's hashes. A new corpus version or a rebuilt
  manifest moves the whole grid (runs and stores) to ``cmkd.<old hash>``.
* The teachers' recipe: every store and student depends on the teachers, so a finished teacher whose
  saved ``config.yaml`` (a cross-fitted teacher's: its members') differs from the recipe's teacher
  section (a longer budget, another lr) moves the whole grid aside too.
* A student's recipe: only that run is moved aside (``seed<k>.superseded``) and trained again.

Keys that say how a run was computed, not what it learned (threads, data workers, where features
are computed, evaluation batching), are not compared, nor are the other family's model keys (a
new AST patch stride leaves the CNN runs as they are).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Set as AbstractSet
from pathlib import Path

from .. import paths
from ..config import Config, config_to_dict
from ..paths import store_dir
from ..recipe import read_yaml

GRID_DATA_FILE = "grid-data.json"
NOT_COMPARED = {"num_workers", "threads", "features_on", "eval_batch_size", "eval_cache_mb", "device", "fold"}
STUDENT_WIRING = {"kd", "logits", "teacher"}  # set by the grid from the cell's definition
RESOLVED_BY_THE_RUN = {"kd_loss": "auto"}  # a run saves what "auto" became (from the label type)


def _other_family_keys(model: str | None) -> set[str]:
    from ..models import model_entry
    from ..training.model_options import FAMILY_KEYS

    if model is None:
        return set()  # no model recorded: compare everything
    try:
        family = model_entry(model).family
    except ValueError:
        return set()  # a model this version does not know: compare everything
    return set().union(*(keys for name, keys in FAMILY_KEYS.items() if name != family))


def _saved_config(run_dir: Path) -> dict | None:
    """The recipe a run was trained with; a cross-fitted teacher keeps it in each of its members."""
    for candidate in (
        run_dir / "config.yaml",
        *sorted(run_dir.glob("fold*/config.yaml")),
        *sorted(run_dir.glob("member*/config.yaml")),
    ):
        if candidate.exists():
            return read_yaml(candidate) or {}
    return None


def recipe_changes(run_dir: Path, config: Config, ignore: AbstractSet[str] = frozenset()) -> list[str]:
    """'key: run has X, now Y' for every difference between a finished run's saved recipe and
    ``config`` that changes what the run learns."""
    from ..training.resume import in_current_meaning, recipe_differences

    saved = _saved_config(run_dir)
    if saved is None:
        return []
    saved = in_current_meaning(saved)
    current = config_to_dict(config)
    for key, unresolved in RESOLVED_BY_THE_RUN.items():
        if current.get(key) == unresolved:
            current[key] = saved.get(key, unresolved)
    lines = recipe_differences(saved, current, config_to_dict(Config()))
    skipped = NOT_COMPARED | set(ignore) | _other_family_keys(saved.get("model"))
    return [line for line in lines if line.split(":", 1)[0] not in skipped]


def _move_aside(dataset: str, root: Path, tag: str) -> Path:
    stores = store_dir(dataset)
    base_tag, count = tag, 1
    while root.with_name(f"cmkd.{tag}").exists() or (stores / f"cmkd.{tag}").exists():
        count += 1  # set aside before (switching versions back and forth)
        tag = f"{base_tag}-{count}"
    moved = root.with_name(f"cmkd.{tag}")
    old_stores = list(stores.glob("cmkd-*.zarr")) if stores.exists() else []
    if old_stores:
        (stores / f"cmkd.{tag}").mkdir(exist_ok=True)
        for store in old_stores:
            store.rename(stores / f"cmkd.{tag}" / store.name)
    root.rename(moved)
    return moved


def set_aside_stale_grid(dataset: str, teachers: dict[str, tuple[Path, Config]] | None = None) -> Path | None:
    """Move the grid's runs and stores aside when the data changed, or when a finished teacher of
    ``teachers`` ({cell: (run dir, the config it would get now)}) has another recipe. Returns the
    folder the old runs went to, if any."""
    from ..manifests import manifest_hashes

    root = paths.run_dir(dataset, paths.GRID_FOLDER)
    current = manifest_hashes(paths.manifest_dir(dataset))
    record = root / GRID_DATA_FILE
    moved = None
    if root.exists() and any(root.iterdir()):
        recorded = json.loads(record.read_text()) if record.exists() else None
        tag = recorded["clips.csv"][:8] if recorded and "clips.csv" in recorded else "unrecorded"
        reason = None
        if recorded != current:
            reason = f"was trained on other data than data_manifests/{dataset} has now"
        else:
            for name, (run_dir, config) in (teachers or {}).items():
                changes = recipe_changes(run_dir, config) if (run_dir / "summary.json").exists() else []
                if changes:
                    reason = f"has a {name} trained with another recipe ({'; '.join(changes[:3])})"
                    tag = f"{tag}-recipe"
                    break
        if reason:
            moved = _move_aside(dataset, root, tag)
            print(f"{root} {reason}: moved to {moved} (and its stores beside them); the grid starts afresh")
    root.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(current, indent=2) + "\n")
    return moved


def set_aside_superseded_run(run_dir: Path, config: Config) -> bool:
    """A finished student whose recipe differs from ``config``: renamed to ``<run>.superseded[-k]``
    so it trains again. Returns whether it was moved."""
    changes = recipe_changes(run_dir, config, ignore=STUDENT_WIRING)
    if not changes:
        return False
    target, count = run_dir.with_name(f"{run_dir.name}.superseded"), 1
    while target.exists():
        count += 1
        target = run_dir.with_name(f"{run_dir.name}.superseded-{count}")
    shutil.move(str(run_dir), str(target))
    print(f"{run_dir} was trained with another recipe ({'; '.join(changes[:3])}): moved to {target}, training it again")
    return True

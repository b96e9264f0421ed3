"""ESC-50 as released on GitHub: one metadata CSV and a flat audio folder, evaluated over 5 folds.

Layout under DATA_ROOT::

    meta/esc50.csv        filename,fold,target,category,esc10,src_file,take
    audio/<filename>      e.g. audio/1-100032-A-0.wav

ESC-50 has no ontology ids, so each category gets an invented mid ``/esc50/<category>``; classes are
ordered by ``target``. Clips carry a fold and no split (:meth:`Manifest.select` builds the splits).
"""

from __future__ import annotations

from pathlib import Path

from .records import Clip, Label
from .validate import Problems, SourceRow, finalise_clips, read_table

META = "meta/esc50.csv"
COLUMNS = ["filename", "fold", "target", "category"]
# the 50 categories of the released ESC-50, in target order (0-49)
ESC50_CATEGORIES = (
    "dog",
    "rooster",
    "pig",
    "cow",
    "frog",
    "cat",
    "hen",
    "insects",
    "sheep",
    "crow",
    "rain",
    "sea_waves",
    "crackling_fire",
    "crickets",
    "chirping_birds",
    "water_drops",
    "wind",
    "pouring_water",
    "toilet_flush",
    "thunderstorm",
    "crying_baby",
    "sneezing",
    "clapping",
    "breathing",
    "coughing",
    "footsteps",
    "laughing",
    "brushing_teeth",
    "snoring",
    "drinking_sipping",
    "door_wood_knock",
    "mouse_click",
    "keyboard_typing",
    "door_wood_creaks",
    "can_opening",
    "washing_machine",
    "vacuum_cleaner",
    "clock_alarm",
    "clock_tick",
    "glass_breaking",
    "helicopter",
    "chainsaw",
    "siren",
    "car_horn",
    "engine",
    "train",
    "church_bells",
    "airplane",
    "fireworks",
    "hand_saw",
)


def esc50_mid(category: str) -> str:
    return f"/esc50/{category}"


def _integer(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def _vocabulary(categories: dict[int, tuple[str, str]]) -> list[Label]:
    """Classes in target order. A subset with gaps in ``target`` is renumbered densely, because the
    label index is a column of the model's output and an empty column would only dilute metrics."""
    return [
        Label(index, esc50_mid(categories[target][0]), categories[target][0])
        for index, target in enumerate(sorted(categories))
    ]


def _check_known_categories(categories: dict[int, tuple[str, str]], problems: Problems) -> None:
    """A copy that speaks ESC-50's categories must speak only them: a typo ("dgo") or a new target
    would otherwise become one more class, silently. A dataset in ESC-50's layout with categories of
    its own (none of the 50, like the embedded corpus) is left as it is."""
    import difflib

    known = set(ESC50_CATEGORIES)
    if not any(category in known for category, _ in categories.values()):
        return
    for target, (category, where) in sorted(categories.items()):
        if category not in known:
            close = difflib.get_close_matches(category, ESC50_CATEGORIES, n=3, cutoff=0.5)
            problems.add(
                where,
                f"category {category!r} (target {target}) is not one of ESC-50's "
                f"{len(ESC50_CATEGORIES)} categories"
                + (f" (closest: {', '.join(map(repr, close))})" if close else "")
                + "; it would become an extra class",
            )


def prepare_esc50(data_root: str | Path, progress: bool = True, check: str = "full") -> tuple[list[Label], list[Clip]]:
    """meta/esc50.csv + audio/ -> (labels in target order, clips with folds 1-5)."""
    data_root = Path(data_root)
    source = f"ESC-50 at {data_root}"
    problems = Problems()
    meta = data_root / META
    if not meta.is_file():
        problems.add(str(data_root), f"not an ESC-50 copy: missing {META}")
        problems.raise_if_any(source)
    categories: dict[int, tuple[str, str]] = {}  # target -> (category, where first seen)
    target_of: dict[str, tuple[int, str]] = {}  # category -> (target, where first seen)
    rows = []
    for line, r in read_table(meta, COLUMNS, problems):
        where = f"{meta.name} row {line}"
        fold, target = _integer(r["fold"]), _integer(r["target"])
        if fold is None:
            problems.add(where, f"fold {r['fold']!r} is not an integer 1-5")
        if target is None:
            problems.add(where, f"target {r['target']!r} is not an integer class index")
        if fold is None or target is None:
            continue
        category = r["category"]
        if not r["filename"]:
            problems.add(where, "empty filename")
            continue
        if not category:
            problems.add(where, "empty category")
            continue
        known = categories.setdefault(target, (category, where))
        if known[0] != category:
            problems.add(where, f"target {target} is {category!r} here but {known[0]!r} at {known[1]}")
            continue
        other_target, first = target_of.setdefault(category, (target, where))
        if other_target != target:
            problems.add(where, f"category {category!r} has target {target} here but {other_target} at {first}")
            continue
        rows.append(
            SourceRow(where, Path(r["filename"]).stem, f"audio/{r['filename']}", (esc50_mid(category),), "", fold)
        )
    _check_known_categories(categories, problems)
    labels = _vocabulary(categories)
    clips = finalise_clips(rows, labels, data_root, source, problems, progress, check)
    return labels, clips

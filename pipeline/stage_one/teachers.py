"""Which teacher labels which clip: one checkpoint, or k cross-fitted ones.

A cross-fitted run (``make teacher CROSSFIT=k``) writes ``crossfit.json`` listing its k members and
the clips each one did NOT train on. Stage one labels a training clip with the member that held it
out, and every other clip (val, eval, unlabelled) with the mean of the k members' logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..checkpoints import file_sha256, load_checkpoint, resolve_checkpoint
from ..paths import CROSSFIT_FILE, read_crossfit

MEAN_OF_TEACHERS = -1


@dataclass
class TeacherSet:
    checkpoints: list[str]  # absolute paths, member order
    held_out: dict[str, int] = field(default_factory=dict)  # clip_id -> member that did not train on it
    run_dir: str = ""

    @property
    def cross_fitted(self) -> bool:
        return len(self.checkpoints) > 1

    def member_for(self, clip_id: str) -> int:
        if not self.cross_fitted:
            return 0
        return self.held_out.get(clip_id, MEAN_OF_TEACHERS)


def load_teacher_set(path: str | Path) -> TeacherSet:
    path = Path(path)
    info = read_crossfit(path) if path.is_dir() else None
    if info is not None:
        members = [str(_member_dir(path, path / CROSSFIT_FILE, m)) for m in info["members"]]
        held_out = {cid: i for i, m in enumerate(info["members"]) for cid in m["held_out"]}
        return TeacherSet([str(resolve_checkpoint(m).resolve()) for m in members], held_out, str(path))
    return TeacherSet([str(resolve_checkpoint(path).resolve())], {}, str(path))


def _member_dir(run_dir: Path, crossfit: Path, member: object) -> Path:
    """A member's run directory, which must be a direct sub-folder of the cross-fitted run: the file
    may come from another lab, so it never gets to point stage one at an arbitrary path."""
    name = member.get("run_dir") if isinstance(member, dict) else None
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"{crossfit}: member run_dir {name!r} must be the name of a folder inside {run_dir}")
    return (run_dir / name).resolve()


def load_members(teachers: TeacherSet) -> dict[str, dict]:
    """Every member checkpoint, loaded once (stage one reuses them for provenance and, inline, the models)."""
    return {path: load_checkpoint(path) for path in teachers.checkpoints}


# recipe keys that hold paths of the machine that trained the teacher
PATH_KEYS = ("init", "logits", "teacher")


def public_path(path: str | Path, base: str | Path | None = None) -> str:
    """A path as a published store may show it: relative to the project folder (runs/<dataset>/<run>/...)
    when inside it, else relative to ``base`` (the teacher's run folder), else the file name alone. A
    store travels between labs; the writer's folder layout (and the user names in it) stays home, and
    the sha256 beside it identifies the file."""
    path = Path(path).resolve()
    roots = [(Path.cwd().resolve(), "")]
    if base is not None:
        roots.append((Path(base).resolve(), Path(base).resolve().name + "/"))
    for root, prefix in roots:
        try:
            return prefix + path.relative_to(root).as_posix()
        except ValueError:
            continue
    return path.name


def teacher_provenance(teachers: TeacherSet, loaded: dict[str, dict] | None = None) -> dict:
    """The store's `teacher` attrs: registry name, checkpoint hashes, training config, eval metrics;
    paths only relative to the teacher's run folder, or as file names."""
    loaded = loaded or load_members(teachers)
    base = teachers.run_dir if teachers.run_dir and Path(teachers.run_dir).is_dir() else None
    members = []
    for ckpt_path in teachers.checkpoints:
        ckpt = loaded[ckpt_path]
        members.append(
            {
                "checkpoint": public_path(ckpt_path, base),
                "sha256": file_sha256(ckpt_path),
                "model": ckpt["model_name"],
                "model_config": ckpt["model_config"],
                "metrics": ckpt.get("metrics", {}),
            }
        )
    first = loaded[teachers.checkpoints[0]]
    config = dict(first["config"]) if isinstance(first.get("config"), dict) else first.get("config")
    if isinstance(config, dict):
        config.update(
            {key: public_path(config[key]) for key in PATH_KEYS if isinstance(config.get(key), str) and config[key]}
        )
    out = {
        "model": first["model_name"],
        "run": public_path(teachers.run_dir) if teachers.run_dir else "",
        "checkpoint_sha256": [m["sha256"] for m in members] if teachers.cross_fitted else members[0]["sha256"],
        "training_config": config,
        "eval_metrics": first.get("metrics", {}).get("eval", {}),
        "dataset": first.get("dataset", ""),
        "cross_fitted": teachers.cross_fitted,
        "members": members,
    }
    if teachers.cross_fitted:
        info = read_crossfit(teachers.run_dir)
        if info is None:
            raise ValueError(f"{teachers.run_dir}: a cross-fitted teacher without its {CROSSFIT_FILE}")
        out["out_of_fold"] = info.get("out_of_fold", {})
    return out

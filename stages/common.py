"""Argument helpers shared by the stage drivers (kept tiny: the work lives in pipeline/)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from pipeline.config import Config, parse_overrides
from pipeline.config_check import check_config
from pipeline.recipe import load_config


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dataset", default="demo", help="name under data_manifests/")
    parser.add_argument("--config", default=None, help="YAML recipe (default: configs/<dataset>.yaml if present)")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (ARGS from make)")
    return parser


def add_storage_options_argument(parser: argparse.ArgumentParser) -> None:
    """`--storage-options JSON` (make STORAGE_OPTIONS=): fsspec options for a store at a URL; applied by
    :func:`apply_storage_options` once the arguments are parsed."""
    parser.add_argument(
        "--storage-options",
        metavar="JSON",
        default=None,
        help="fsspec options for a remote store (s3://, gs://, hf://, http(s)://), a JSON object "
        "such as '{\"anon\": true}' (make STORAGE_OPTIONS=; also CMKD_STORAGE_OPTIONS)",
    )


def apply_storage_options(args) -> None:
    from pipeline.store.remote import set_storage_options

    set_storage_options(getattr(args, "storage_options", None))


def add_jobs_argument(parser: argparse.ArgumentParser) -> None:
    """The grid drivers' `JOBS`: runs side by side (results do not depend on it)."""
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="grid runs side by side, each in its own process (make JOBS=; results do not depend on it)",
    )


def add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    """SCHEDULER=slurm: what each batch job asks for (make CLUSTER_JOBS, CLUSTER_CORES, ...)."""
    group = parser.add_argument_group("SLURM jobs (SCHEDULER=slurm)")
    group.add_argument("--cluster-jobs", type=int, default=1, help="batch jobs to start (CLUSTER_JOBS)")
    group.add_argument("--cluster-cores", type=int, default=1, help="CPU cores per job (CLUSTER_CORES)")
    group.add_argument("--cluster-memory", default="4GB", help="memory per job, e.g. 32GB (CLUSTER_MEMORY)")
    group.add_argument("--cluster-gpus", type=int, default=0, help="GPUs per job, one worker each (CLUSTER_GPUS)")
    group.add_argument("--cluster-walltime", default="01:00:00", help="per job, HH:MM:SS (CLUSTER_WALLTIME)")
    group.add_argument("--cluster-queue", default="", help="partition (CLUSTER_QUEUE)")
    group.add_argument("--cluster-account", default="", help="account (CLUSTER_ACCOUNT)")
    group.add_argument("--cluster-host", default="", help="address the scheduler listens on (CLUSTER_HOST)")
    group.add_argument("--cluster-interface", default="", help="network interface, e.g. ib0 (CLUSTER_INTERFACE)")


def cluster_resources(args):
    from pipeline.cluster import ClusterResources

    return ClusterResources(
        jobs=args.cluster_jobs,
        cores=args.cluster_cores,
        memory=args.cluster_memory,
        gpus=args.cluster_gpus,
        walltime=args.cluster_walltime,
        queue=args.cluster_queue,
        account=args.cluster_account,
        host=args.cluster_host,
        interface=args.cluster_interface,
    )


def resolve_config(args, role: str = "student", **named) -> Config:
    """Recipe (its family section for the model, and its teacher section for role="teacher"), then
    named options (--model, --fold ...), then key=value overrides: later wins."""
    path = args.config or default_recipe(args.dataset)
    text = parse_overrides([o for o in args.overrides if o.strip()])  # ARGS: strings, typed by the recipe's keys
    # named options arrive typed from argparse and stay typed; the model also picks the recipe's family section
    typed = {k: v for k, v in named.items() if v not in (None, "") and k not in text}
    family = {"model": str(typed.pop("model"))} if "model" in typed else {}
    config = dataclasses.replace(load_config(path, {**family, **text}, role=role), **typed)
    return check_config(config, source=f"{path or 'default recipe'} with ARGS")


def recipe_folders() -> list[Path]:
    """Where a dataset's recipe is looked for, first match wins (docs/architecture.md, "Where recipes
    come from"): the current project's configs/, then $CMKD_HOME/configs, then the recipes shipped
    with the code (the checkout or editable install the `stages` package runs from)."""
    folders = [Path("configs")]
    if os.environ.get("CMKD_HOME", "").strip():
        folders.append(Path(os.environ["CMKD_HOME"]).expanduser() / "configs")
    folders.append(Path(__file__).resolve().parents[1] / "configs")
    return folders


def default_recipe(dataset: str) -> str | None:
    names = [
        n for n in (dataset, dataset.split("_")[0], "audioset_balanced" if dataset.startswith("audioset") else "") if n
    ]
    for folder in recipe_folders():
        for name in names:
            path = folder / f"{name}.yaml"
            if path.exists():
                return str(path)
    return None


# errors a user can fix from the message: bad inputs, bad config, a refused store or checkpoint,
# unwritable or full outputs. Anything else is a bug and keeps its traceback.
def _expected_errors() -> tuple[type[BaseException], ...]:
    import yaml

    from pipeline.models.pretrained import PretrainedUnavailable
    from pipeline.store import StoreError

    return ValueError, OSError, StoreError, PretrainedUnavailable, yaml.YAMLError


SHOWN_PROBLEMS = 4


def error_line(error: BaseException) -> tuple[str, list[str]]:
    """(the one `error:` line, further lines listing every problem when there are more than fit)."""
    if isinstance(error, OSError) and error.strerror:
        text = f"{error.filename}: {error.strerror}" if error.filename is not None else error.strerror
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            text += " (free space, then rerun, with RESUME=1 for a training run: what finished is kept)"
        return text, []
    lines = [line.strip() for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
    if len(lines) <= SHOWN_PROBLEMS + 1:
        return _joined(lines), []
    head = _joined(lines[: SHOWN_PROBLEMS + 1])
    return f"{head}; and {len(lines) - SHOWN_PROBLEMS - 1} more lines (listed below)", lines[SHOWN_PROBLEMS + 1 :]


def _joined(lines: list[str]) -> str:
    # "source: 3 problem(s):" introduces the list that follows it on the same line
    return "".join(line + (" " if line.endswith(":") else "; ") for line in lines[:-1]) + lines[-1]


def run_guarded(main: Callable[..., int | None], argv: list[str] | None = None) -> int:
    """Run ``main`` and return its exit status. An expected error prints ``error: <one line naming the
    file, row, field or key>`` and gives 2, without a traceback; ``CMKD_DEBUG=1`` shows the traceback
    as well. make (through :func:`run_main`) and the ``cmkd`` command both go through here."""
    try:
        code = main(argv)
    except SystemExit as done:
        if isinstance(done.code, str):  # a driver's own `raise SystemExit("error: ...")`
            print(done.code if done.code.startswith("error:") else f"error: {done.code}", file=sys.stderr)
            return 2
        raise
    except _expected_errors() as error:
        if os.environ.get("CMKD_DEBUG", "").strip() not in ("", "0"):
            traceback.print_exc()
        line, rest = error_line(error)
        print(f"error: {line}", file=sys.stderr)
        for more in rest:
            print(f"  {more}", file=sys.stderr)
        return 2
    return int(code or 0)


def run_main(main: Callable[..., int | None], argv: list[str] | None = None) -> NoReturn:
    """Every driver's entry point: :func:`run_guarded`, then exit with its status."""
    sys.exit(run_guarded(main, argv))

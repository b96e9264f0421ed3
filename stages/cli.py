"""`cmkd <command> [options]`: the stage drivers behind one console command, named like the make targets.

`cmkd teacher --dataset demo` runs what `make teacher DATASET=demo` runs, through the same error
handling (an expected error is one `error:` line and exit status 2; `CMKD_DEBUG=1` adds the
traceback); `cmkd <command> --help` lists that driver's options. `cmkd store <command>` is the store
command line (`python -m pipeline.store` is the same program). data_manifests/, runs/ and stores/
are folders of the current directory (the project folder); recipes are found as described in
docs/architecture.md, "Where recipes come from" (`--config`, ./configs, `$CMKD_HOME/configs`, the
recipes shipped with the code).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
import textwrap

# command -> driver module; the order is the order of a full run
COMMANDS = {
    "data": "stages.make_data",
    "manifests": "stages.manifests",
    "norm-stats": "stages.norm_stats",
    "pack": "stages.pack",
    "teacher": "stages.teacher",
    "evaluate": "stages.evaluate",
    "teacher-logits": "stages.teacher_logits",
    "inspect": "stages.inspect_store",
    "verify": "pipeline.store.cli",
    "student": "stages.student",
    "cmkd": "stages.cmkd",
    "families": "stages.families",
    "store": "pipeline.store.cli",
    "predict": "stages.predict",
    "export": "stages.export",
    "bench": "stages.bench",
    "gpu-check": "stages.gpu_check",
}
SUMMARIES = {  # commands whose module is not a driver of their own
    "verify": "Re-hash every chunk of a store, check a published digest (--digest) and coverage of a manifest "
    "(--manifest); the same as `cmkd store verify`.",
    "store": "The store command line: inspect, verify, export, publish, ensemble, merge, subset, import "
    "(`cmkd store --help`; also `python -m pipeline.store`).",
}


def summary_line(module: str, command: str = "") -> str:
    """The whole first paragraph of a driver's docstring, read from source (listing commands must not
    load torch), without its "`make x`:" prefix."""
    if command in SUMMARIES:
        return SUMMARIES[command]
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    paragraph = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, on one line
    if paragraph.startswith("`make ") and "`:" in paragraph:  # "`make teacher`: supervised ..." -> "supervised ..."
        paragraph = paragraph.split("`:", 1)[1].strip()
    return paragraph[:1].upper() + paragraph[1:]


def command_list(width: int = 100) -> str:
    names = max(len(name) for name in COMMANDS)
    lines = []
    for name, module in COMMANDS.items():
        wrapped = textwrap.wrap(summary_line(module, name), width=width - names - 4) or [""]
        lines.append(f"  {name.ljust(names)}  {wrapped[0]}")
        lines += [" " * (names + 4) + more for more in wrapped[1:]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmkd",
        description=__doc__.splitlines()[0].split(": ", 1)[1],
        epilog="commands:\n" + command_list() + "\n\n`cmkd <command> --help` shows the options of one command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="command", help="one of the commands below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="options passed to the command's driver")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The console script: the exit status is returned (the entry point's wrapper exits with it)."""
    from .common import run_guarded

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    driver = importlib.import_module(COMMANDS[args.command])
    if args.command in ("store", "verify"):  # the store command line, under its cmkd name
        rest = args.args if args.command == "store" else ["verify", *args.args]
        return run_guarded(lambda argv: driver.main(argv, prog="cmkd store"), rest)
    program, sys.argv[0] = sys.argv[0], f"cmkd {args.command}"  # the driver's usage line names the command
    try:
        return run_guarded(driver.main, args.args)
    finally:
        sys.argv[0] = program


if __name__ == "__main__":
    sys.exit(main())

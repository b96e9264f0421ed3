"""`cmkd <command> [options]`: the stage drivers behind one console command, named like the make targets.

`cmkd teacher --dataset demo` runs what `make teacher DATASET=demo` runs; `cmkd <command> --help`
lists that driver's options. Like make, run it from the repository root (configs/, data_manifests/,
runs/ and stores/ are project-relative folders).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys

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
    "student": "stages.student",
    "cmkd": "stages.cmkd",
    "predict": "stages.predict",
    "export": "stages.export",
    "bench": "stages.bench",
    "gpu-check": "stages.gpu_check",
}


def summary_line(module: str) -> str:
    """First line of a driver's docstring, read from source: listing commands must not load torch."""
    spec = importlib.util.find_spec(module)
    with open(spec.origin, encoding="utf-8") as f:
        doc = ast.get_docstring(ast.parse(f.read())) or ""
    sentence = " ".join(doc.split("\n\n")[0].split())  # the first paragraph, on one line
    if sentence.startswith("`make ") and "`:" in sentence:  # "`make teacher`: supervised ..." -> "supervised ..."
        sentence = sentence.split("`:", 1)[1].strip()
    sentence = sentence.split(". ")[0].split("; ")[0].rstrip(".")
    return sentence[:1].upper() + sentence[1:]


def command_list() -> str:
    width = max(len(name) for name in COMMANDS)
    return "\n".join(f"  {name.ljust(width)}  {summary_line(module)}" for name, module in COMMANDS.items())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cmkd", description=__doc__.splitlines()[0].split(": ", 1)[1],
        epilog="commands:\n" + command_list() + "\n\n`cmkd <command> --help` shows the options of one command.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=list(COMMANDS), metavar="command", help="one of the commands below")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="options passed to the command's driver")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    driver = importlib.import_module(COMMANDS[args.command])
    program, sys.argv[0] = sys.argv[0], f"cmkd {args.command}"  # the driver's usage line names the command
    try:
        return int(driver.main(args.args) or 0)
    finally:
        sys.argv[0] = program


if __name__ == "__main__":
    sys.exit(main())

"""Store array names are spelled once, in pipeline/store/format.py (``ARRAY``); other modules write
``ARRAY.clip_id``, never ``"clip_id"``, so a renamed or added array cannot leave a stale copy behind.

The names come from the schema itself (every spec of a store with top-k, views and 1.3's text twins,
and of a dense one), not from a list copied here.

Which modules: those that can reach a store's arrays: the store package, and every module under
pipeline/, stages/ and bench/ that imports it (``pipeline.store...`` or a relative ``..store``) or
opens Zarr data directly (zarr, xarray, tensorstore). Elsewhere the same words are other things:
manifest columns (``split``, ``fold`` in pipeline/manifests/), config keys, progress-bar units.

Which uses, within those modules: a string constant equal to an array name where code names a thing
to look up or build by that name: a subscript key (``group["valid"]``), an ``in`` test
(``"fingerprint" in group``), a positional call argument (``read_rows(group, "clip_id")``,
``arrays.pop("view_partner")``), a dict-literal key, an element of a tuple/list/set literal, or a
string assigned to a name on its own (a second spelling: ``TWIN = "view_partner_utf8"``), and the
text of an f-string subscript key (``x[f"{prefix}logits"]``). Not checked:
keyword-argument values and parameter defaults (labels and CLI choices such as ``what="logits"``),
``==`` comparisons (modes such as ``join == "fingerprint"``), other f-string text and docstrings.

The few uses of such a word for something that is not an array, in those places, are listed in
NOT_ARRAYS by module, enclosing function, word and kind of use, each with the reason.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import NamedTuple

import pytest

from pipeline.store.format import Layout
from tests.helpers import REPO_ROOT

ROOT = REPO_ROOT
SCANNED = ("pipeline", "stages", "bench")
FORMAT_MODULE = "pipeline/store/format.py"
STORE_PACKAGE = "pipeline/store/"
ZARR_READERS = {"zarr", "xarray", "tensorstore"}

# (module, outermost enclosing function ("" = module level), word, kind of use) -> why it is not a store array
NOT_ARRAYS = {
    ("pipeline/store/cli.py", "_report", "valid", "key"): "the count of valid clips in the `completed` attrs",
    ("pipeline/store/cli.py", "build_parser", "logits", "element"): "a --space choice: logits or probabilities",
    ("pipeline/store/describe.py", "describe", "valid", "dict key"): "its report: valid clips per split",
    ("pipeline/store/describe.py", "describe", "logits", "dict key"): "its report: the section on the logits",
    ("pipeline/store/describe.py", "describe", "clip_id", "dict key"): "its report: a failure entry's clip",
    ("pipeline/store/describe.py", "format_description", "logits", "key"): "reads describe()'s report",
    ("pipeline/store/describe.py", "format_description", "valid", "key"): "reads describe()'s report",
    ("pipeline/store/describe.py", "format_description", "clip_id", "key"): "reads describe()'s report",
    ("pipeline/store/publish.py", "dataset_card", "logits", "key"): "reads describe()'s report",
    ("pipeline/store/publish.py", "dataset_card", "valid", "key"): "reads describe()'s report",
    ("pipeline/store/writer.py", "finalize_store", "valid", "dict key"): "the count of valid clips in `completed`",
    ("pipeline/store/matching.py", "", "fingerprint", "element"): "a join mode: clips matched by audio fingerprint",
    ("pipeline/store/ops.py", "ensemble", "logits", "element"): "the averaging space: logits or probabilities",
    ("pipeline/store/imports.py", "import_ced", "topk_values", "element"): "a dataset of CED's own HDF5 file",
    ("pipeline/store/imports.py", "import_ced", "topk_values", "key"): "a dataset of CED's own HDF5 file",
    ("pipeline/experiments/controls.py", "write_prior_store", "fold", "dict key"): "the prior control's fold",
    ("pipeline/experiments/grid.py", "_wire_teacher", "logits", "dict key"): "the student config's store path",
    ("pipeline/experiments/diagnostics.py", "grid_diagnostics", "logits", "key"): "a run summary's store path",
    ("pipeline/experiments/diagnostics.py", "grid_diagnostics", "logits", "argument"): "a run summary's store path",
    ("pipeline/export/model_card.py", "card_facts", "logits", "argument"): "the student config's store path",
    ("pipeline/stage_two/run.py", "kd_source", "logits", "dict key"): "the run summary's store path",
    ("pipeline/training/outputs.py", "", "clip_id", "assigned"): "the predictions file's id column",
    ("bench/sharing.py", "run_fingerprint", "fingerprint", "element"): "a timing: the audio fingerprint",
    ("bench/sharing.py", "run_fingerprint", "fingerprint", "key"): "a timing: the audio fingerprint",
}


def store_array_names() -> set[str]:
    """Every array name the schema defines: all the specs of the richest layouts, dense and top-k."""
    widths = tuple((key, 8) for key in ("class", "class_name", "clip_id", "fingerprint", "split"))
    names = set()
    for topk in (0, 3):
        layout = Layout(n_clips=10, num_classes=5, topk=topk, views=2, chunk_clips=4, text_bytes=widths)
        names |= {spec.name for spec in layout.array_specs()}
    return names


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports(tree: ast.Module, module: str) -> set[str]:
    """Absolute names of the modules `tree` imports (relative imports resolved against `module`)."""
    package = module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return found


def _in_scope(relative: str, tree: ast.Module, module: str) -> bool:
    if relative.startswith(STORE_PACKAGE):
        return True
    imported = _imports(tree, module)
    return any(name == "pipeline.store" or name.startswith("pipeline.store.") for name in imported) or any(
        name.split(".")[0] in ZARR_READERS for name in imported
    )


class Use(NamedTuple):
    module: str
    line: int
    word: str
    function: str  # the outermost enclosing function, "" at module level
    kind: str  # key, in, argument, dict key, element, assigned

    @property
    def allow_key(self) -> tuple[str, str, str, str]:
        return self.module, self.function, self.word, self.kind


class _Finder(ast.NodeVisitor):
    """Collects (line, word, enclosing function, kind) for the uses the module docstring lists."""

    def __init__(self, names: set[str]):
        self.names, self.scope, self.found = names, [""], []

    def _named(self, node) -> bool:
        return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in self.names

    def _flag(self, node, kind: str) -> None:
        if self._named(node):
            self.found.append((node.lineno, node.value, self.scope[-1], kind))

    def _function(self, node) -> None:
        self.scope.append(node.name if self.scope[-1] == "" else self.scope[-1])  # the outermost function
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def visit_Subscript(self, node: ast.Subscript) -> None:
        self._flag(node.slice, "key")  # a tuple key's elements are flagged as a tuple's
        if isinstance(node.slice, ast.JoinedStr):  # a name built from pieces: x[f"{prefix}logits"]
            for piece in node.slice.values:
                self._flag(piece, "f-string key")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops):
            self._flag(node.left, "in")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        for argument in node.args:
            self._flag(argument, "argument")
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> None:
        for key in node.keys:
            self._flag(key, "dict key")
        self.generic_visit(node)

    def _collection(self, node) -> None:
        for element in node.elts:
            self._flag(element, "element")
        self.generic_visit(node)

    visit_Tuple = visit_List = visit_Set = _collection

    def visit_Assign(self, node: ast.Assign) -> None:
        self._flag(node.value, "assigned")
        self.generic_visit(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._flag(node.value, "assigned")
        self.generic_visit(node)


def spelled_array_names(names: set[str]) -> list[Use]:
    """Every checked use of an array name as a string outside format.py."""
    found = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            module = path.relative_to(ROOT).as_posix()
            if module == FORMAT_MODULE:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=module)
            if not _in_scope(module, tree, _module_name(path)):
                continue
            finder = _Finder(names)
            finder.visit(tree)
            found += [Use(module, *use) for use in finder.found]
    return found


def test_store_array_names_are_spelled_only_in_the_format_module():
    uses = spelled_array_names(store_array_names())
    literal = [use for use in uses if use.allow_key not in NOT_ARRAYS]
    if literal:
        pytest.fail(
            "store array names spelled as strings; use pipeline.store.format.ARRAY:\n"
            + "\n".join(
                f"{use.module}:{use.line}: {use.word!r} as {use.kind}" + (f" in {use.function}" if use.function else "")
                for use in literal
            ),
            pytrace=False,
        )
    # an allow-list entry whose use is gone (renamed function, removed code) must go too
    stale = set(NOT_ARRAYS) - {use.allow_key for use in uses}
    assert not stale, f"NOT_ARRAYS entries that match nothing any more: {sorted(stale)}"


def test_the_names_namespace_is_the_schema():
    from pipeline.store.format import ARRAY, ArrayNames

    fields = [field.name for field in dataclasses.fields(ArrayNames)]
    # each value is its own attribute's name (a trailing _ only where the name is a Python keyword)
    assert [getattr(ARRAY, field) for field in fields] == [field.removesuffix("_") for field in fields]
    assert {getattr(ARRAY, field) for field in fields} == store_array_names()


def test_the_check_sees_each_kind_of_use(tmp_path):
    """The finder flags every use the docstring names, and none of the unchecked ones."""
    source = """
import zarr
TWIN = "view_partner_utf8"
def f(group, arrays, mode, what="logits"):
    a = group["valid"][:]
    b = "fingerprint" in group
    c = arrays.pop("view_partner")
    d = {"teacher_index": 0}
    e = ("chunk_done", "chunk_sha256")
    g = label(what="logits") if mode == "split" else f"{mode}clip_id"
    h = arrays[f"{mode}topk_fill"]
"""
    finder = _Finder(store_array_names())
    finder.visit(ast.parse(source))
    assert [(line, word, kind) for line, word, _, kind in finder.found] == [
        (3, "view_partner_utf8", "assigned"),
        (5, "valid", "key"),
        (6, "fingerprint", "in"),
        (7, "view_partner", "argument"),
        (8, "teacher_index", "dict key"),
        (9, "chunk_done", "element"),
        (9, "chunk_sha256", "element"),
        (11, "topk_fill", "f-string key"),
    ]

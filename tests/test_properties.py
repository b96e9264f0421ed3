"""Property tests (hypothesis): the manifest parsers round-trip well-formed rows and raise the
project's error type on malformed ones; the store reader gives back what was written for any clip
subset, chunk size, view count and layout."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.manifests import ManifestError, prepare_ast_json, prepare_esc50
from pipeline.manifests.validate import Problems, read_table

from .store_helpers import chunk_views, clip_ids, fill_store, make_store
from .test_manifests import ESC_ROWS, make_esc50, tone

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# cell text as it appears in real metadata: any printable text, commas and quotes included, no
# surrounding blanks (the reader strips them) and no line breaks (no metadata format has them)
CELL = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12).map(str.strip)


@PROPERTY
@given(rows=st.lists(st.tuples(CELL, CELL, CELL), min_size=0, max_size=12), bom=st.booleans(), crlf=st.booleans())
def test_well_formed_tables_round_trip(rows, bom, crlf):
    rows = [r for r in rows if any(r)]  # an all-empty row is a blank line, which carries no clip
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(["a", "b", "c"])
    writer.writerows(rows)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.csv"
        path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode("utf-8"))
        problems = Problems()
        parsed = read_table(path, ["a", "b", "c"], problems)
    assert problems.found == []
    assert [tuple(r.values()) for _, r in parsed] == [tuple(r) for r in rows]
    assert [line for line, _ in parsed] == list(range(2, 2 + len(rows)))  # the editor's line numbers


MALFORMED = st.sampled_from(
    [
        "1-9-A-0.wav,1,0,dog,False,1,A,extra",  # a column too many
        "1-9-A-0.wav,1,0,dog",  # columns missing
        '1-9-A-0.wav,1,"0,dog,False,1,A',  # a quote that never closes
        "1-9-A-0.wav,one,0,dog,False,1,A",  # fold not a number
        "1-9-A-0.wav,9,0,dog,False,1,A",  # fold out of range
        "1-9-A-0.wav,1,zero,dog,False,1,A",  # target not a number
        "../../etc/passwd,1,0,dog,False,1,A",  # path escaping DATA_ROOT
        ",1,0,dog,False,1,A",  # no file name
        "1-1-A-0.wav,1,0,dog,False,1,A",  # duplicate clip
        "1-9-A-0.wav,1,0,dog,False,1,A",  # no audio file
        b"1-9-A-0.wav,1,0,d\xe9og,False,1,A",  # not UTF-8
        "1-9-A-50.wav,1,50,dgo,False,1,A",  # a typo category under a new target
    ]
)


@PROPERTY
@given(bad=MALFORMED, position=st.integers(0, len(ESC_ROWS)))
def test_malformed_esc50_rows_always_raise_the_projects_error(bad, position):
    with tempfile.TemporaryDirectory() as folder:
        root = make_esc50(Path(folder), ESC_ROWS)
        meta = root / "meta/esc50.csv"
        lines = meta.read_bytes().splitlines()
        lines.insert(1 + position, bad if isinstance(bad, bytes) else bad.encode())
        meta.write_bytes(b"\n".join(lines) + b"\n")
        try:
            prepare_esc50(root, progress=False, check="header")
        except ManifestError as error:
            assert f"esc50.csv row {2 + position}" in str(error)
        else:
            raise AssertionError(f"accepted a malformed row: {bad!r}")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@PROPERTY
@given(
    document=st.one_of(
        JSON,
        st.fixed_dictionaries({"data": st.lists(JSON, max_size=4)}),
        st.fixed_dictionaries(
            {"data": st.lists(st.fixed_dictionaries({"wav": st.text(max_size=10), "labels": JSON}), max_size=4)}
        ),
    )
)
def test_any_ast_datafile_is_accepted_or_refused_with_the_projects_error(document):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        tone(root / "a.wav")
        (root / "labels.csv").write_text("index,mid,display_name\n0,/m/a,A\n1,/m/b,B\n")
        (root / "train.json").write_text(json.dumps(document))
        try:
            _, clips = prepare_ast_json(
                root, root / "labels.csv", [root / "train.json"], progress=False, check="header"
            )
        except ManifestError:
            return
        assert all(c.path == "a.wav" for c in clips)  # the only audio there is


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 16),
    chunk=st.integers(1, 7),
    views=st.integers(0, 3),
    dtype=st.sampled_from(["float32", "float16"]),
    topk=st.sampled_from([0, 0, 2]),
    data=st.data(),
)  # 2 of the helpers' 6 classes
def test_store_reader_gives_back_what_was_written(n, chunk, views, dtype, topk, data):
    ids = clip_ids(n)
    failed = data.draw(st.sets(st.sampled_from(ids), max_size=n // 3))
    subset = data.draw(st.lists(st.sampled_from(ids + ["not-there"]), max_size=n + 2))
    with tempfile.TemporaryDirectory() as folder:
        path = make_store(
            Path(folder) / "s.zarr", n=n, chunk_clips=chunk, views=views, dtype=dtype, topk=topk, view_seed=7
        )  # the seed store_helpers.chunk_views draws with
        written = fill_store(path, views=views, failed={c: "RuntimeError: unreadable" for c in failed})
        from pipeline.store import LogitTable

        table = LogitTable.open(path, clip_ids=subset or None)
        wanted = subset or ids
        rows = table.rows(wanted)
        assert set(table.clip_ids) == ({c for c in wanted if c in ids})
        logits = table.logits_for(rows)
        for clip, row, got in zip(wanted, rows, logits):
            if clip not in ids or clip in failed:
                assert np.isnan(got).all() and (row < 0 or not table.valid_rows(np.array([row]))[0])
                continue
            expected = written["logits"][ids.index(clip)].astype(dtype).astype(np.float32)
            if topk:  # compact rows keep each row's top-k exactly
                top = np.argsort(-expected, kind="stable")[:topk]
                assert np.array_equal(got[top], expected[top])
            else:
                assert np.array_equal(got, expected)
            for k in range(views):
                view = table.view_for(int(row), k)
                assert view == chunk_views(ids, ids.index(clip), ids.index(clip) + 1, views)[0][k]
                stored = table.view_logits_for(np.array([row]), np.array([k]))[0]
                expected_view = written["view_logits"][ids.index(clip), k].astype(dtype).astype(np.float32)
                assert np.array_equal(
                    stored if not topk else stored[np.argsort(-expected_view, kind="stable")[:topk]],
                    expected_view if not topk else expected_view[np.argsort(-expected_view, kind="stable")[:topk]],
                )


def test_a_subset_matching_no_clip_reads_as_missing(tmp_path):
    """The case hypothesis found: a table opened on unknown ids used to raise IndexError."""
    from pipeline.store import LogitTable

    path = make_store(tmp_path / "s.zarr", n=3, chunk_clips=1)
    fill_store(path)
    table = LogitTable.open(path, clip_ids=["not-there"])
    assert len(table) == 0 and np.isnan(table.logits_for(table.rows(["not-there"]))).all()

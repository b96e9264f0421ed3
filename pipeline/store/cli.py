"""`python -m pipeline.store <command>`: inspect, verify, export, publish, ensemble, merge, subset, import.

Every STORE argument is a directory, a .zarr.zip or a URL (http(s)://, s3://, gs://, hf://; read-only). Exit status:
0 success, 1 the store failed a check or the command refused (one line on stderr saying why),
2 a usage error (argparse's own status).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any

from .format import StoreError


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None


def _manifest_dir(dataset: str):
    from pathlib import Path

    path = Path(dataset)
    from pipeline.paths import manifest_dir

    return path if (path / "clips.csv").exists() else manifest_dir(dataset)


def cmd_inspect(args) -> int:
    """The one `inspect` (`cmkd inspect`, `make inspect` and `python -m pipeline.store inspect` run it):
    the store's description; with --verify or --digest every chunk re-hashed first. `make inspect`
    then scores the soft targets against a dataset's labels (stages/inspect_store.py): that needs the
    training side, which this package never imports."""
    from .describe import describe, format_description
    from .verify import check_store

    digest = getattr(args, "digest", None)
    verification = check_store(args.store, digest) if (args.verify or digest) else None
    info = describe(args.store, verification)
    print(json.dumps(info, indent=2, default=str) if args.json else format_description(info))
    if verification is not None and not verification.ok:
        if not args.json:
            print(
                f"\nWARNING: {len(verification.problems)} integrity problem(s): do not train from this store as it is"
            )
            for problem in verification.problems:
                print(f"problem    {problem}")
        return 1
    return 0


def _manifest_problems(store, dataset: str) -> list[str]:
    from pipeline.manifests.records import load_manifest

    from .matching import match_clips
    from .reader import LogitTable

    manifest = load_manifest(_manifest_dir(dataset))
    table = LogitTable.open(store, load_views=False)
    problems = []
    if table.vocabulary_mids != manifest.mids:
        same_set = sorted(table.vocabulary_mids) == sorted(manifest.mids)
        problems.append(
            f"vocabulary: the store's {table.num_classes} classes differ from {manifest.name}'s "
            f"{manifest.num_classes}" + (" (same classes, other order)" if same_set else "")
        )
    match = match_clips(table, [c.clip_id for c in manifest.clips], [c.fingerprint for c in manifest.clips])
    covered = int(table.usable(match.rows).sum())
    print(
        f"manifest   {manifest.name}: {covered}/{len(manifest.clips)} clips have valid logits, "
        + (
            f"{len(match.audio_differs)} with the same id but other audio"
            if match.audio_checked
            else "audio not compared (no fingerprints on one side)"
        )
    )
    if match.audio_differs:
        problems.append(
            f"{len(match.audio_differs)} clips have the store's id but other audio "
            f"(first: {', '.join(match.audio_differs[:10])})"
        )
    return problems


def cmd_verify(args) -> int:
    from .verify import check_store

    result = check_store(args.store, args.digest)
    problems = list(result.problems)
    megabytes = result.bytes_checked / 1e6
    print(f"checked    {result.chunks_checked} chunks, {megabytes:.1f} MB in {result.seconds:.2f} s")
    print(
        f"digest     {result.digest or '(not computed)'}"
        + ("  (matches --digest)" if args.digest and result.ok else "")
    )
    for note in result.notes:
        print(f"note       {note}")
    if args.manifest and result.ok:
        problems += _manifest_problems(args.store, args.manifest)
    for problem in problems:
        print(f"problem    {problem}")
    print("verified   yes" if not problems else f"verified   NO: {len(problems)} problem(s)")
    return 0 if not problems else 1


def cmd_export(args) -> int:
    from .ops import export

    digest = export(args.store, args.out, args.digest)
    print(f"exported   {args.store} -> {args.out}\ndigest     {digest}  (publish this beside the file)")
    return 0


def cmd_publish(args) -> int:
    from .publish import publish

    result = publish(args.store, args.folder, licence=args.license, repo=args.repo, title=args.title)
    for path in result["files"]:
        print(f"wrote      {path}")
    print(f"digest     {result['digest']}  (also in README.md; publish it somewhere else too)")
    return 0


def _report(out: str, completed: dict) -> int:
    print(f"wrote      {out}: {completed['clips']} clips, {completed['valid']} valid\ndigest     {completed['digest']}")
    return 0


def cmd_ensemble(args) -> int:
    from .ops import ensemble

    return _report(
        args.out, ensemble(args.stores, args.out, args.weights, args.space, args.clips, args.vocab_remap, args.digest)
    )


def cmd_merge(args) -> int:
    from .ops import merge

    return _report(args.out, merge(args.stores, args.out, args.digest))


def cmd_subset(args) -> int:
    from .ops import read_clip_list, subset

    clips = read_clip_list(args.clips) if args.clips else None
    splits = [s for s in args.split.split(",") if s] if args.split else None
    return _report(args.out, subset(args.store, args.out, splits, clips, args.digest))


def cmd_import(args) -> int:
    from .imports import import_ced, import_efficientat

    common = dict(
        teacher=args.teacher,
        vocabulary=args.vocabulary,
        activation=args.activation,
        manifest_dir=_manifest_dir(args.manifest) if args.manifest else None,
        sample_rate=args.sample_rate,
    )
    if args.peer == "efficientat":
        if len(args.logits) != 1 or len(args.index) != 1:
            raise ValueError("efficientat takes one --logits .npy and one --index pickle")
        completed = import_efficientat(args.logits[0], args.index[0], args.out, values=args.values, **common)
    else:
        completed = import_ced(args.logits, args.index, args.out, **common)
    return _report(args.out, completed)


STORE_HELP = "directory, .zarr.zip, or URL (http(s)://, s3://, gs://, hf://)"


def build_parser(prog: str = "python -m pipeline.store") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    shared = argparse.ArgumentParser(add_help=False)
    shared.add_argument(
        "--storage-options",
        metavar="JSON",
        default=None,
        help="fsspec options for remote stores, e.g. '{\"anon\": true}' or "
        '\'{"endpoint_url": "http://..."}\' (make STORAGE_OPTIONS=; also read from '
        "CMKD_STORAGE_OPTIONS)",
    )

    class CommandParser(argparse.ArgumentParser):
        """A command's parser: it takes the shared options too (a class, as add_subparsers' parser_class)."""

        def __init__(self, **kw: Any) -> None:
            super().__init__(parents=[shared], **kw)

    commands = parser.add_subparsers(
        dest="command", required=True, metavar="command", help="one of:", parser_class=CommandParser
    )

    p = commands.add_parser("inspect", help="what a store holds and where it came from")
    p.add_argument("store", help=STORE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--verify", action="store_true", help="also re-hash every chunk (then it says 'verified')")
    p.add_argument("--digest", help="the digest the publisher gave: verify, and fail unless this copy reproduces it")
    p.set_defaults(run=cmd_inspect)

    p = commands.add_parser("verify", help="re-hash every chunk; name bad chunks and their clips")
    p.add_argument("store")
    p.add_argument("--digest", help="the digest the publisher gave: fail unless this copy reproduces it")
    p.add_argument(
        "--manifest",
        metavar="DATASET",
        help="also check coverage and vocabulary against a manifest "
        "(a name under data_manifests/ or a manifest folder)",
    )
    p.set_defaults(run=cmd_verify)

    p = commands.add_parser("export", help="verify and write one .zarr.zip to publish")
    p.add_argument("store")
    p.add_argument("out", help="OUT.zarr.zip")
    p.add_argument("--digest", help="the digest the store must reproduce (refused otherwise)")
    p.set_defaults(run=cmd_export)

    p = commands.add_parser(
        "publish", help="a folder to upload as is: the .zarr.zip, a dataset card README.md and SHA256SUMS"
    )
    p.add_argument("store")
    p.add_argument("folder", help="the folder to write (created if missing)")
    p.add_argument(
        "--license", default="other", help="the release's licence as a Hub licence id, e.g. cc-by-4.0 (default: other)"
    )
    p.add_argument("--repo", default="<org>/<name>", help="the Hub dataset repo it goes to, for the card's commands")
    p.add_argument("--title", default=None, help="the card's title (default: '<teacher> logits on <dataset>')")
    p.set_defaults(run=cmd_publish)

    p = commands.add_parser("ensemble", help="a teacher made of several stores (e.g. CNN + AST)")
    p.add_argument("stores", nargs="+", help="STORE... OUT (the last is the output directory)")
    p.add_argument("--weights", type=_floats, help="one weight per store, e.g. 0.5,0.5 (default equal)")
    p.add_argument(
        "--space",
        choices=("logits", "probs"),
        default="logits",
        help="average logits, or probabilities (converted back to logits)",
    )
    p.add_argument(
        "--clips",
        choices=("same", "intersection"),
        default="same",
        help="same: refuse different clip sets; intersection: keep the clips all stores have",
    )
    p.add_argument(
        "--vocab-remap",
        action="store_true",
        help="map stores whose classes are the first's in another order by mid (else refused)",
    )
    p.add_argument("--digest", action="append", help="a published digest per input store, in order (repeat it)")
    p.set_defaults(run=cmd_ensemble)

    p = commands.add_parser("merge", help="one store from stores of different shards or splits of one dataset")
    p.add_argument("stores", nargs="+", help="STORE... OUT (the last is the output directory)")
    p.add_argument("--digest", action="append", help="a published digest per input store, in order (repeat it)")
    p.set_defaults(run=cmd_merge)

    p = commands.add_parser("subset", help="a store of some splits or clips")
    p.add_argument("store")
    p.add_argument("out")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--split", help="comma-separated splits, e.g. train,val")
    group.add_argument("--clips", help="a file with one clip id per line")
    p.add_argument("--digest", help="the digest the input store must reproduce (refused otherwise)")
    p.set_defaults(run=cmd_subset)

    p = commands.add_parser("import", help="a store from a peer's release (EfficientAT .npy + index, CED HDF5)")
    p.add_argument("peer", choices=("efficientat", "ced"))
    p.add_argument("out", help="the store to write")
    p.add_argument("--logits", nargs="+", required=True, help="efficientat: the N x C .npy; ced: the HDF5 file(s)")
    p.add_argument(
        "--index",
        nargs="+",
        required=True,
        help="efficientat: the filename->row pickle; ced: one filename index (.csv/.tsv/.parquet) per HDF5",
    )
    p.add_argument("--teacher", required=True, help="the teacher's name (the release does not say)")
    p.add_argument("--vocabulary", required=True, help="labels.csv or class_labels_indices.csv in the release's order")
    p.add_argument("--activation", choices=("sigmoid", "softmax"), default="sigmoid")
    p.add_argument(
        "--values",
        choices=("logits", "probs"),
        default="logits",
        help="efficientat: what the .npy holds (CED always holds probabilities)",
    )
    p.add_argument("--manifest", metavar="DATASET", help="take clips, splits and fingerprints from this manifest")
    p.add_argument("--sample-rate", type=int, default=16000, help="the sample rate of the audio the teacher heard")
    p.set_defaults(run=cmd_import)
    return parser


def main(argv=None, prog: str = "python -m pipeline.store") -> int:
    from .remote import set_storage_options

    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command in ("ensemble", "merge"):
        if len(args.stores) < 3:
            parser.error(f"{args.command} needs at least two stores and an output: STORE STORE ... OUT")
        args.stores, args.out = args.stores[:-1], args.stores[-1]
    try:
        set_storage_options(args.storage_options)
        return args.run(args)
    except (StoreError, ValueError, OSError, KeyError) as exc:
        if os.environ.get("CMKD_DEBUG", "").strip() not in ("", "0"):
            traceback.print_exc()
        message = " ".join(str(exc).split())  # one line, whatever the exception held
        print(f"error: {message}", file=sys.stderr)
        return 1

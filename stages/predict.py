"""`make predict`: tag recordings of any length (a file, a folder or a manifest) with a trained model.

CHECKPOINT is a run folder, a .pt checkpoint, an exported folder (`make export`) or a published
AST/PSLA file with LABELS=<its vocabulary>; OUT's extension picks CSV, Parquet or JSON. See
docs/inference.md.
"""

import argparse

from pipeline.inference import PredictJob, PredictSettings, run_predict

from .common import run_main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run folder, .pt file, exported folder or published file")
    parser.add_argument("--audio", required=True, help="an audio file, a folder (searched recursively) or a manifest")
    parser.add_argument("--out", required=True, help="the table: .csv, .parquet or .json")
    parser.add_argument(
        "--hop", type=float, default=None, help="seconds between window starts (default: half a window)"
    )
    parser.add_argument("--frames", action="store_true", help="also one row per window, in <OUT stem>.windows<ext>")
    parser.add_argument("--topk", type=int, default=5, help="labels listed per row (default 5)")
    parser.add_argument(
        "--engine",
        choices=("torch", "onnx"),
        default="torch",
        help="torch, or onnx (onnxruntime; needs an exported folder)",
    )
    parser.add_argument("--batch", type=int, default=32, help="windows per forward pass (default 32)")
    parser.add_argument(
        "--device", default="auto", help="auto | cpu | cuda[:n] (default auto: a GPU when there is one)"
    )
    parser.add_argument(
        "--labels", default=None, help="a published checkpoint's vocabulary file (class_labels_indices.csv)"
    )
    parser.add_argument("--model", default=None, help="registry name of a published file that is not a known one")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's and onnxruntime's default)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    missing = [
        name
        for name, value in (("CHECKPOINT", args.checkpoint), ("AUDIO", args.audio), ("OUT", args.out))
        if not value.strip()
    ]
    if missing:  # make passes empty strings; an empty AUDIO would otherwise mean the current folder
        raise SystemExit(f"error: {', '.join(missing)} must be given (make predict CHECKPOINT=... AUDIO=... OUT=...)")
    settings = PredictSettings(hop_seconds=args.hop, topk=args.topk, frames=args.frames, batch_size=args.batch)
    job = PredictJob(
        args.checkpoint,
        args.audio,
        args.out,
        settings,
        args.engine,
        args.device,
        args.labels,
        args.model,
        args.threads,
        not args.no_progress,
    )
    summary = run_predict(job)
    return 1 if summary.failures else 0


if __name__ == "__main__":
    run_main(main)

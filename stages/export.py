"""`make export`: a checkpoint as safetensors + config.json, ONNX and a model card (README.md), in one folder.

The ONNX model takes normalised log-mel features (the front end stays in Python; its parameters are
in front_end.json) and is checked against PyTorch before the export reports success. See
docs/inference.md.
"""

import argparse
import json

from pipeline.export import export_model

from .common import run_main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="run folder or .pt checkpoint")
    parser.add_argument("--out", required=True, help="folder to write (created; files in it are replaced)")
    parser.add_argument("--no-onnx", action="store_true", help="safetensors, config and card only")
    args = parser.parse_args(argv)
    if not args.checkpoint.strip() or not args.out.strip():
        raise SystemExit(
            "error: CHECKPOINT and OUT must be given (make export CHECKPOINT=<run dir or .pt> OUT=<folder>)"
        )
    result = export_model(args.checkpoint, args.out, onnx=not args.no_onnx)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    run_main(main)

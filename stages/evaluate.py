"""`make evaluate`: re-evaluate a checkpoint (run dir or .pt file) on a dataset's eval split."""

import json

from pipeline.config import FrontEndConfig
from pipeline.checkpoints import model_from_checkpoint
from pipeline.manifests import load_manifest
from pipeline.paths import manifest_dir
from pipeline.training import splits_for
from pipeline.training.evaluate import evaluate_model
from pipeline.training.loop import single_label_of
from pipeline.training.runner import latest_run

from .common import base_parser, run_main


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--checkpoint", default="", help="run directory or checkpoint file (default: newest run)")
    parser.add_argument("--fold", type=int, default=None, help="fold-based data: score this fold (default: the run's)")
    args = parser.parse_args(argv)
    model, config, ckpt = model_from_checkpoint(args.checkpoint or latest_run(args.dataset))
    manifest = load_manifest(manifest_dir(args.dataset))
    fold = args.fold if args.fold is not None else config.fold
    _, _, eval_clips = splits_for(manifest, fold)
    front_end = FrontEndConfig(**ckpt["front_end"])  # score with the front end the model trained on
    metrics = evaluate_model(model, manifest, eval_clips, front_end, single_label_of(config, manifest),
                             batch_size=config.eval_batch_size)
    print(json.dumps({"checkpoint": ckpt["path"], "dataset": args.dataset, **metrics}, indent=2, default=float))
    return 0


if __name__ == "__main__":
    run_main(main)

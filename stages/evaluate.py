"""`make evaluate`: re-evaluate a checkpoint (run dir or .pt file) on a dataset's eval split.

The checkpoint's output columns are matched to the dataset's classes by mid (as stage one does): the
same classes in another order, or a superset, are scored column by column; a vocabulary lacking any
of the dataset's classes is refused, naming both."""

import json

from pipeline.checkpoints import checkpoint_mids, model_from_checkpoint
from pipeline.config import FrontEndConfig
from pipeline.manifests import load_manifest
from pipeline.manifests.vocabulary import class_map_for
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
    class_map = class_map_for(checkpoint_mids(ckpt, ckpt["path"]), manifest, True, ckpt["path"])
    front_end = FrontEndConfig(**ckpt["front_end"])  # score with the front end the model trained on
    metrics = evaluate_model(
        model,
        manifest,
        eval_clips,
        front_end,
        single_label_of(config, manifest),
        batch_size=config.eval_batch_size,
        class_map=class_map,
    )
    vocabulary = "the dataset's" if class_map is None else "mapped to the dataset's by mid"
    print(
        json.dumps(
            {"checkpoint": ckpt["path"], "dataset": args.dataset, "vocabulary": vocabulary, **metrics},
            indent=2,
            default=float,
        )
    )
    return 0


if __name__ == "__main__":
    run_main(main)

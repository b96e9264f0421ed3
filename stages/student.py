"""`make student`: train a student from audio plus a teacher's cached logits (CMKD stage two)."""

from pathlib import Path

from pipeline.distill import kd_job_extras, latest_store
from pipeline.training import run_training

from .common import base_parser, resolve_config, run_main


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    for name in ("model", "logits", "teacher", "kd", "kd-loss", "tau", "missing"):
        parser.add_argument(f"--{name}", default=None)
    # torchrun reads a bare --run as an abbreviation of its own --run-path; --run-name passes through
    parser.add_argument("--run", "--run-name", dest="run", default=None, help="run name")
    parser.add_argument("--lambda", dest="kd_lambda", default=None, help="weight of the task loss")
    parser.add_argument("--fold", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)
    logits = args.logits
    if logits is None and args.kd != "online" and args.kd != "none":
        logits = latest_store(args.dataset)  # the store `make teacher-logits` just wrote
    kd = args.kd or ("clean" if logits and logits != "none" else "none")
    config = resolve_config(args, model=args.model, fold=args.fold, kd=kd, kd_loss=args.kd_loss,
                            kd_lambda=args.kd_lambda, tau=args.tau, missing=args.missing,
                            logits=logits if logits != "none" else "", teacher=args.teacher)
    run = args.run or (f"{config.model}-kd-{config.kd}" if config.kd != "none" else config.model)
    manifest_dir = Path("data_manifests") / args.dataset

    print(f"student {config.model}: KD={config.kd}" + (f" from {config.logits}" if config.logits else ""))
    summary = run_training(args.dataset, config, run, fold=args.fold, resume=args.resume, job_extras=kd_job_extras(manifest_dir))
    if not summary:
        return 0  # a rank other than 0 under torchrun: rank 0 reports
    print(f"{run} on {args.dataset}: eval mAP {summary['map']:.4f}  accuracy {summary['accuracy']:.4f}"
          f"  -> runs/{args.dataset}/{run}/")
    return 0


if __name__ == "__main__":
    run_main(main)

"""`make student`: train a student from audio plus a teacher's cached logits (CMKD stage two)."""

from pipeline.paths import run_dir
from pipeline.stage_two.run import choose_kd_source, train_student
from pipeline.training.losses import KD_KINDS

from .common import add_storage_options_argument, apply_storage_options, base_parser, resolve_config, run_main


def main(argv=None) -> int:
    parser = base_parser(__doc__)
    parser.add_argument("--model", default=None, help="student registry name (default: the recipe's model)")
    parser.add_argument(
        "--logits",
        default=None,
        help="stage-one store (.zarr, .zarr.zip or a URL: http(s)://, s3://, gs://, hf://; "
        "'{fold}' is filled in per fold); "
        "default: the latest store of the dataset; 'none': no store",
    )
    parser.add_argument(
        "--digest",
        default=None,
        help="the store digest its publisher gave: refuse any store that does not reproduce it "
        "(comma-separated for per-fold stores); the summary records the digest checked",
    )
    parser.add_argument("--teacher", default=None, help="teacher run dir or checkpoint for --kd online")
    parser.add_argument(
        "--kd",
        default=None,
        choices=("none", "clean", "replay", "online"),
        help="clean: cached logits of the clean clip; replay: stored augmented views rebuilt "
        "exactly; online: the teacher runs on each batch; none: the no-KD student of the "
        "same recipe (default: clean when a store is found, else none)",
    )
    parser.add_argument(
        "--kd-loss",
        default=None,
        choices=("auto", *KD_KINDS),
        help="kl: softmax KL to the teacher; bce: BCE to sigmoid(teacher / tau); auto: bce for "
        "multi-label data, kl for single-label (default: the recipe's, else auto)",
    )
    parser.add_argument("--tau", default=None, type=float, help="temperature on the teacher logits (default: recipe)")
    parser.add_argument(
        "--missing",
        default=None,
        choices=("error", "mask"),
        help="train clips without teacher logits: error stops listing them, mask trains them "
        "with zero KD weight (default: the recipe's, else error)",
    )
    parser.add_argument(
        "--join",
        default=None,
        choices=("id", "fingerprint", "recording"),
        help="join store rows by clip id (audio checked), by audio fingerprint (renamed copies), or "
        "by clip id accepting another encoding of the recording (mp3 vs WAV AudioSet copies)",
    )
    # torchrun reads a bare --run as an abbreviation of its own --run-path; --run-name passes through
    parser.add_argument(
        "--run",
        "--run-name",
        dest="run",
        default=None,
        help="run name (default: <model>-kd-<kd>, or the model name without KD)",
    )
    parser.add_argument(
        "--lambda",
        dest="kd_lambda",
        default=None,
        type=float,
        help="weight of the task loss: lambda * task + (1 - lambda) * KD (default: recipe)",
    )
    parser.add_argument("--fold", type=int, default=None, help="fold-based data (ESC-50 layout): evaluate on this fold")
    parser.add_argument("--resume", action="store_true", help="continue a killed run from its last checkpoint")
    add_storage_options_argument(parser)
    args = parser.parse_args(argv)
    apply_storage_options(args)
    kd, logits = choose_kd_source(args.logits, args.kd, args.dataset)
    config = resolve_config(
        args,
        model=args.model,
        fold=args.fold,
        kd=kd,
        kd_loss=args.kd_loss,
        kd_lambda=args.kd_lambda,
        tau=args.tau,
        missing=args.missing,
        join=args.join,
        logits=logits,
        digest=args.digest,
        teacher=args.teacher,
    )
    run = args.run or (f"{config.model}-kd-{config.kd}" if config.kd != "none" else config.model)

    print(
        f"student {config.model}: KD={config.kd}"
        + (f" from {config.logits}" if config.logits else "")
        + (" (digest pinned)" if config.digest else "")
    )
    summary = train_student(args.dataset, config, run, fold=args.fold, resume=args.resume)
    if not summary:
        return 0  # a rank other than 0 under torchrun: rank 0 reports
    print(
        f"{run} on {args.dataset}: eval mAP {summary['map']:.4f}  accuracy {summary['accuracy']:.4f}"
        f"  -> {run_dir(args.dataset, run)}/"
    )
    return 0


if __name__ == "__main__":
    run_main(main)

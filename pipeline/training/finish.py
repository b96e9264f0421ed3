"""The end of a run: the final model chosen (weight-averaged, last, or best under early stopping),
scored on the eval split together with the best-val model, and the run's summary, plots and outputs.
Also what every checkpoint of a run says about itself (:func:`checkpoint_identity`)."""

from __future__ import annotations

from ..checkpoints import load_checkpoint, save_checkpoint
from ..config import RunPaths, config_to_dict
from ..manifests import Clip
from ..metrics import METRIC_KEYS
from . import runlog
from .evaluate import EvalInputs, Evaluation, evaluate_clips
from .job import TrainJob
from .outputs import write_run_outputs
from .schedule import WeightAverager


def eval_inputs_for(job: TrainJob, clips: list[Clip], device: str) -> EvalInputs:
    config = job.config
    return EvalInputs(
        job.manifest,
        clips,
        job.front_end,
        config.eval_batch_size,
        config.num_workers,
        config.features_on,
        device.startswith("cuda"),
        keep_mb=config.eval_cache_mb,
    )


def checkpoint_identity(job: TrainJob, model, single_label: bool) -> dict:
    """What a later stage needs to rebuild and trust this model: architecture, recipe, front end,
    and the vocabulary its outputs speak (a teacher may later label another dataset's clips)."""
    return {
        "model_name": model.model_name,
        "model_config": model.model_config,
        "config": config_to_dict(job.config),
        "front_end": vars(job.front_end),
        "vocabulary": {"mids": job.manifest.mids, "names": [label.name for label in job.manifest.labels]},
        "activation": "softmax" if single_label else "sigmoid",
        "dataset": job.manifest.name,
    }


def finish_run(
    job: TrainJob,
    model,
    averager: WeightAverager,
    best: dict,
    single_label: bool,
    device: str,
    progress: bool,
    stopped_early: int = 0,
) -> dict:
    """Choose the final model (weight-averaged if enabled, else last; the best-val weights when early
    stopping ended the run, since the weight average then covers an arbitrary part of the run),
    evaluate, write summary and plot."""
    config, paths = job.config, RunPaths(job.run_dir)
    last = load_checkpoint(paths.checkpoints / "last.pt")
    model.load_state_dict(last["model"])
    final_state, final_kind = last["model"], "last"
    if stopped_early:
        final_state, final_kind = load_checkpoint(paths.checkpoints / "best.pt")["model"], "best"
    elif averager.enabled and averager.state is not None:
        final_state, final_kind = averager.averaged_state(model), "averaged"
    eval_inputs = eval_inputs_for(job, job.eval_clips, device)  # read once for the final and the best model

    def evaluate() -> Evaluation:
        return evaluate_clips(
            model,
            job.manifest,
            job.eval_clips,
            job.front_end,
            single_label,
            device=device,
            progress=progress,
            inputs=eval_inputs,
        )

    model.load_state_dict(final_state)
    final = evaluate()
    final_metrics = final.metrics
    base = checkpoint_identity(job, model, single_label)
    if final_kind == "averaged":
        save_checkpoint(
            {**base, "model": final_state, "epoch": config.epochs, "metrics": {"eval": final_metrics}},
            paths.checkpoints / "averaged.pt",
        )
    epochs_trained = stopped_early or config.epochs
    save_checkpoint(
        {**base, "model": final_state, "epoch": epochs_trained, "kind": final_kind, "metrics": {"eval": final_metrics}},
        paths.checkpoints / "final.pt",
    )
    best_ckpt = load_checkpoint(paths.checkpoints / "best.pt")
    model.load_state_dict(best_ckpt["model"])
    best_metrics = evaluate().metrics
    model.load_state_dict(final_state)
    summary = {
        **{k: final_metrics[k] for k in METRIC_KEYS},
        "final_model": final_kind,
        "epochs_trained": epochs_trained,
        "stopped_early": bool(stopped_early),
        "per_class_ap": final_metrics["per_class_ap"],
        "eval_clips": len(job.eval_clips),
        "train_clips": len(job.train_clips),
        "best": {**{k: best_metrics[k] for k in METRIC_KEYS}, "epoch": best["epoch"]},
        "model": config.model,
        "dataset": job.manifest.name,
        "seed": config.seed,
        **(job.extra_summary or {}),
    }
    runlog.write_summary(paths.root / "summary.json", summary)
    runlog.plot_curves(
        paths.root / "metrics.csv",
        paths.plots / "training_curve.png",
        title=runlog.run_title(job.run_dir, config, job.manifest.name),
    )
    return write_run_outputs(paths, config, job.manifest, final, summary, progress)

"""Stage one on dask.distributed: teachers -> chunked logits in a Zarr store."""

from .run import StageOneJob, run_stage_one
from .teachers import TeacherSet, load_teacher_set

__all__ = ["StageOneJob", "TeacherSet", "load_teacher_set", "run_stage_one"]

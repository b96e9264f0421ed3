# cmkd-pipeline. Every target calls one thin driver in stages/; see README.md.
# Variables have defaults, so the bare commands work: DATASET is the embedded corpus unless given.

SHELL := /bin/bash
# idle OpenMP threads sleep instead of spinning: torch ran up to 35x slower on shared cores otherwise
export OMP_WAIT_POLICY ?= PASSIVE
PY := .venv/bin/python
VENV_STAMP := .venv/.installed
TEST_STAMP := .venv/.installed-test
EXPORT_STAMP := .venv/.installed-export

## dataset name: data_manifests/<DATASET>/, configs/<DATASET>.yaml (demo, demo-esc50, fsd50k, esc50, audioset_balanced ...)
DATASET ?= demo
## embedded corpus size (1.0: 1200 dev + 400 eval multi-label clips, 400 ESC-50-layout clips)
SIZE ?= 1.0
## seed of the embedded corpus
SEED ?= 0
## the embedded corpus's version: 2 (12 local + 8 temporal classes) | 3 (12 + 12, tried and measured worse) | 1 (the first)
CORPUS_VERSION ?= 2
## where `make data` writes the embedded corpora
DATA_DIR ?= data
EMBEDDED := demo demo-esc50
## the dataset's folder (the embedded corpora: DATA_DIR/DATASET; a real dataset needs it)
DATA_ROOT ?= $(if $(filter $(EMBEDDED),$(DATASET)),$(DATA_DIR)/$(DATASET),)
## metadata layout: fsd50k | esc50 | audioset | audioset-hdf5 (PaSST/EfficientAT mp3 or PANNs waveform HDF5 files) | ast-json (default: from DATASET)
FORMAT ?= $(if $(filter demo,$(DATASET)),fsd50k,$(if $(findstring audioset,$(DATASET)),audioset,$(if $(findstring esc50,$(DATASET)),esc50,$(if $(findstring fsd50k,$(DATASET)),fsd50k,$(DATASET)))))
## recipe YAML (used when it exists)
CONFIG ?= configs/$(DATASET).yaml
## norm-stats: upstream (AST's get_norm_stats.py: mean of per-batch means and stds of the training loader's features) | clean (pooled over clean, unpadded fbank)
NORM_METHOD ?=
## model registry name (default: the recipe's model)
MODEL ?=
## run name under runs/DATASET/ (default: from the model and KD mode)
RUN ?=
## fold-based data: evaluate on this fold (default: every fold in turn, mean reported)
FOLD ?=
## non-empty: continue a killed run from its last epoch checkpoint
RESUME ?=
## key=value recipe overrides, e.g. ARGS="epochs=2 lr=1e-4" (teacher-logits: ARGS="batch_size=256" per forward)
ARGS ?=
## teacher: train K cross-fitted teachers (each labels the clips it did not train on)
CROSSFIT ?=
## teacher run dir or checkpoint (teacher-logits: default the newest run; student: for KD=online)
TEACHER ?=
## teacher-logits: store path (default: stores/DATASET/<teacher run>.zarr); predict: the table (.csv, .parquet, .json); export: the folder
OUT ?=
## teacher-logits: augmented views stored per clip for KD=replay (0: clean logits only)
VIEWS ?= 0
## teacher-logits, cmkd: dask scheduler address, or slurm (SLURM jobs, CLUSTER_*), local, or inline (teacher-logits: no cluster); cmkd default: local processes
SCHEDULER ?=
## SCHEDULER=slurm: batch jobs to start
CLUSTER_JOBS ?= 1
## SCHEDULER=slurm: CPU cores per job
CLUSTER_CORES ?= 1
## SCHEDULER=slurm: memory per job
CLUSTER_MEMORY ?= 4GB
## SCHEDULER=slurm: GPUs per job (one dask worker each)
CLUSTER_GPUS ?= 0
## SCHEDULER=slurm: wall time per job
CLUSTER_WALLTIME ?= 01:00:00
## SCHEDULER=slurm: partition
CLUSTER_QUEUE ?=
## SCHEDULER=slurm: account
CLUSTER_ACCOUNT ?=
## SCHEDULER=slurm: address the dask scheduler listens on (default: this host's)
CLUSTER_HOST ?=
## SCHEDULER=slurm: network interface for scheduler and workers (e.g. ib0)
CLUSTER_INTERFACE ?=
## teacher-logits: local cluster workers (default: one per core; on a GPU machine one per GPU)
WORKERS ?=
## teacher-logits: keep only the top-k logits per row (default: dense); predict: labels listed per row (default 5)
TOPK ?=
## teacher-logits: non-empty: replace a store built by another teacher
OVERWRITE ?=
## teacher-logits: a clip whose audio no longer matches its manifest row: fail (recorded, masked) | error (stop)
CHANGED_AUDIO ?= fail
## student / inspect: the store (.zarr; default: the dataset's latest)
LOGITS ?=
## student: KD mode none | clean | replay | online (default: clean when a store exists)
KD ?=
## student: KD loss auto | kl | bce (default auto: bce for multi-label data, kl for single-label)
KD_LOSS ?=
## student: task-loss weight lambda in lambda * task + (1 - lambda) * KD (default: the recipe's)
LAMBDA ?=
## student: temperature on the teacher logits (default: the recipe's)
TAU ?=
## student: clips without teacher logits: error | mask (default: error)
MISSING ?=
## student: join store rows by clip id (audio fingerprint checked), by fingerprint (renamed copies), or by id across encodings (mp3 vs WAV): id | fingerprint | recording
JOIN ?=
## verify, student, inspect: the store digest a lab published; a store that does not reproduce it is refused
DIGEST ?=
## student / inspect / verify: fsspec options for a remote LOGITS (s3://, gs://, hf://, http(s)://), a JSON object, e.g. '{"anon": true}'
STORAGE_OPTIONS ?=
## evaluate: run dir or .pt file (default: the newest finished run); export: run dir or .pt; predict: also an exported folder or a published file (with LABELS)
CHECKPOINT ?=
## predict: an audio file, a folder (recursive) or a manifest (data_manifests/<name>)
AUDIO ?=
## predict: seconds between window starts (default: half the model's input length)
HOP ?=
## predict: 1: also one row per window, in <OUT stem>.windows<ext>
FRAMES ?=
## predict: torch | onnx (onnxruntime; CHECKPOINT must be an exported folder)
ENGINE ?= torch
## teacher: start from this checkpoint (a published AST/PSLA file such as audioset_10_10_0.4593.pth, or ours)
INIT ?=
## seeds per cell (empty: 1 for demo and cmkd, 3 for families, which needs a spread)
SEEDS ?=
## cmkd, families, demo: training runs side by side (empty: 2 on the embedded corpus, whose tiny CPU runs leave a core idle; 1 elsewhere)
JOBS ?=
## cmkd: student budget design: equal (the teacher's) | short (the recipe's student budget) | both
DESIGN ?=
## cmkd: pair for the consistency, cross-fit and temperature cells: ast_to_cnn | cnn_to_ast
DIRECTION ?=
## cmkd: comma-separated grid cells to run (default: all)
CELLS ?=
## manifests: label CSV (index,mid,display_name) for audioset / ast-json; teacher-logits, predict: a published teacher's vocabulary
LABELS ?=
## manifests: comma-separated AudioSet segment CSVs or AST json datafiles
AUDIOSET_SEGMENTS ?=
## manifests: audio check: full (decode every sample) | header (headers only, no fingerprints)
CHECK ?= full

opt = $(if $(strip $(2)),$(1) "$(strip $(2))",)
# JSON holds double quotes: passed in single quotes
storage_opt = $(if $(strip $(STORAGE_OPTIONS)),--storage-options '$(strip $(STORAGE_OPTIONS))',)
cluster_opts = --cluster-jobs $(CLUSTER_JOBS) --cluster-cores $(CLUSTER_CORES) --cluster-memory $(CLUSTER_MEMORY) \
	--cluster-gpus $(CLUSTER_GPUS) --cluster-walltime $(CLUSTER_WALLTIME) $(call opt,--cluster-queue,$(CLUSTER_QUEUE)) \
	$(call opt,--cluster-account,$(CLUSTER_ACCOUNT)) $(call opt,--cluster-host,$(CLUSTER_HOST)) \
	$(call opt,--cluster-interface,$(CLUSTER_INTERFACE))
jobs = $(or $(JOBS),$(if $(filter $(EMBEDDED),$(DATASET)),2,1))

.PHONY: install data manifests norm-stats pack teacher evaluate teacher-logits inspect verify student cmkd predict export \
        demo families test test-fast test-all lint bench gpu-check clean help

# the documented variables (a `## ` line right above their `?=`), for `make help` to show their values
HELP_VARS = $(shell awk '/^## /{doc=1; next} doc && /^[A-Z_]+ \?=/{print $$1} {doc=0}' $(firstword $(MAKEFILE_LIST)))

## this list: every target, then every variable with its value (the default unless given)
help:
	@echo "usage: make <target> [VARIABLE=value ...]    (the same drivers: cmkd <command> --help)"
	@echo
	@echo "targets:"
	@awk '/^## /{doc=substr($$0, 4); next} doc && /^[a-z][a-z-]*:/{split($$0, t, ":"); printf "  %-15s %s\n", t[1], doc} {doc=""}' $(firstword $(MAKEFILE_LIST))
	@echo
	@echo "variables (value now):"
	@env $(foreach v,$(HELP_VARS),'$(v)=$($(v))') awk '/^## /{doc=substr($$0, 4); next} doc && /^[A-Z_]+ \?=/{v=$$1; value=ENVIRON[v]; if (value == "") value="-"; printf "  %-18s %-22s %s\n", v, value, doc} {doc=""}' $(firstword $(MAKEFILE_LIST))

## create .venv from requirements.txt (idempotent; every target runs it first)
install: $(VENV_STAMP)

# one pinned requirements file; the stamp makes a second `make install` do nothing
$(VENV_STAMP): requirements.txt
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -r requirements.txt
	touch $(VENV_STAMP)

## generate the embedded corpora under DATA_DIR (SIZE, SEED)
data: install
	$(PY) -m stages.make_data --out $(DATA_DIR) --size $(SIZE) --seed $(SEED) --corpus-version $(CORPUS_VERSION)

## build data_manifests/DATASET from the official metadata under DATA_ROOT (FORMAT)
manifests: install
	$(PY) -m stages.manifests --dataset $(DATASET) --format $(FORMAT) $(call opt,--data-root,$(DATA_ROOT)) \
		$(call opt,--labels,$(LABELS)) $(call opt,--segments,$(AUDIOSET_SEGMENTS)) --check $(CHECK)

## fbank mean/std of DATASET's training clips into its dataset.json (NORM_METHOD)
norm-stats: install
	$(PY) -m stages.norm_stats --dataset $(DATASET) $(call opt,--config,$(wildcard $(CONFIG))) \
		$(call opt,--method,$(NORM_METHOD))

## optional: pack DATASET's audio into int16 HDF5 shards (loaders use them automatically)
pack: install
	$(PY) -m stages.pack --dataset $(DATASET)

## supervised training of MODEL on DATASET with the recipe's teacher budget into runs/DATASET/RUN (FOLD, CROSSFIT, INIT, RESUME)
teacher: install
	$(PY) -m stages.teacher --dataset $(DATASET) $(call opt,--config,$(wildcard $(CONFIG))) \
		$(call opt,--model,$(MODEL)) $(call opt,--run,$(RUN)) $(call opt,--fold,$(FOLD)) \
		$(call opt,--crossfit,$(CROSSFIT)) $(call opt,--init,$(INIT)) $(if $(RESUME),--resume,) -- $(ARGS)

## re-evaluate CHECKPOINT on DATASET's eval split
evaluate: install
	$(PY) -m stages.evaluate --dataset $(DATASET) --checkpoint "$(CHECKPOINT)" -- $(ARGS)

## stage one: TEACHER's logits (+ VIEWS augmented views) over every clip into a Zarr store (a published file needs LABELS)
teacher-logits: install
	$(PY) -m stages.teacher_logits --dataset $(DATASET) $(call opt,--teacher,$(TEACHER)) $(call opt,--out,$(OUT)) \
		--views $(VIEWS) $(call opt,--scheduler,$(SCHEDULER)) $(call opt,--workers,$(WORKERS)) \
		$(call opt,--topk,$(TOPK)) $(call opt,--labels,$(LABELS)) $(call opt,--model,$(MODEL)) \
		--changed-audio $(CHANGED_AUDIO) $(if $(OVERWRITE),--overwrite,) $(cluster_opts) -- $(ARGS)

## what a store holds: coverage, provenance, front end, soft targets vs the class prior (LOGITS, DIGEST, FOLD, TAU)
inspect: install
	$(PY) -m stages.inspect_store $(call opt,--dataset,$(DATASET)) $(call opt,--store,$(LOGITS)) \
		$(call opt,--fold,$(FOLD)) $(call opt,--tau,$(TAU)) $(call opt,--digest,$(DIGEST)) $(storage_opt)

## every chunk of a store re-hashed, coverage against DATASET's manifest; DIGEST=<hex> checks a received copy
verify: install
	$(PY) -m pipeline.store verify "$(or $(LOGITS),$(shell cat stores/$(DATASET)/LATEST 2>/dev/null))" \
		$(call opt,--digest,$(DIGEST)) $(if $(wildcard data_manifests/$(DATASET)/clips.csv),--manifest $(DATASET),) \
		$(storage_opt)

## stage two: train MODEL from audio + cached logits (LOGITS, KD, KD_LOSS, LAMBDA, TAU, MISSING)
student: install
	$(PY) -m stages.student --dataset $(DATASET) $(call opt,--config,$(wildcard $(CONFIG))) \
		$(call opt,--model,$(MODEL)) $(call opt,--run,$(RUN)) $(call opt,--fold,$(FOLD)) \
		$(call opt,--logits,$(LOGITS)) $(call opt,--teacher,$(TEACHER)) $(call opt,--kd,$(KD)) \
		$(call opt,--kd-loss,$(KD_LOSS)) $(call opt,--lambda,$(LAMBDA)) $(call opt,--tau,$(TAU)) \
		$(call opt,--missing,$(MISSING)) $(call opt,--join,$(JOIN)) $(call opt,--digest,$(DIGEST)) \
		$(if $(RESUME),--resume,) $(storage_opt) -- $(ARGS)

## tag recordings of any length with a model: CHECKPOINT, AUDIO, OUT (.csv/.parquet/.json), HOP, FRAMES, TOPK, ENGINE, LABELS
predict: install $(EXPORT_STAMP)
	$(PY) -m stages.predict --checkpoint "$(CHECKPOINT)" --audio "$(AUDIO)" --out "$(OUT)" $(call opt,--hop,$(HOP)) \
		$(if $(filter-out 0,$(FRAMES)),--frames,) $(call opt,--topk,$(TOPK)) --engine $(ENGINE) $(call opt,--labels,$(LABELS)) \
		$(call opt,--model,$(MODEL))

## CHECKPOINT (run dir or .pt) into OUT: model.safetensors + config.json, model.onnx + front_end.json, model card README.md
export: install $(EXPORT_STAMP)
	$(PY) -m stages.export --checkpoint "$(CHECKPOINT)" --out "$(OUT)"

# the export and inference extras (requirements-export.txt) on top of the runtime ones
$(EXPORT_STAMP): $(VENV_STAMP) requirements-export.txt
	.venv/bin/pip install --quiet -r requirements-export.txt
	touch $(EXPORT_STAMP)

## the paper's grid (equal and short designs, controls) with SEEDS student seeds; report under reports/DATASET (DESIGN, DIRECTION, CELLS)
cmkd: install
	$(PY) -m stages.cmkd --dataset $(DATASET) --seeds $(or $(SEEDS),1) --jobs $(jobs) $(call opt,--fold,$(FOLD)) $(call opt,--design,$(DESIGN)) \
		$(call opt,--direction,$(DIRECTION)) $(call opt,--only,$(CELLS)) $(call opt,--scheduler,$(SCHEDULER)) \
		$(cluster_opts) -- $(ARGS)

## the corpus's design check: CNN and AST at the teacher budget, no KD, AP per class group over SEEDS (default 3)
families: install
	$(PY) -m stages.families --dataset $(DATASET) --seeds $(or $(SEEDS),3) --jobs $(jobs) -- $(ARGS)

## corpus -> manifests -> CNN + AST teachers (trained longer) -> stores -> short-budget KD students, prior controls -> table
demo: install
	$(PY) -m stages.make_data --out $(DATA_DIR) --size $(SIZE) --seed $(SEED) --corpus-version $(CORPUS_VERSION)
	$(PY) -m stages.manifests --dataset demo --format fsd50k --data-root $(DATA_DIR)/demo
	$(PY) -m stages.manifests --dataset demo-esc50 --format esc50 --data-root $(DATA_DIR)/demo-esc50
	$(PY) -m stages.norm_stats --dataset demo --config configs/demo.yaml --max-clips 300 --method clean
	$(PY) -m stages.cmkd --dataset demo --small --design short --seeds $(or $(SEEDS),1) --jobs $(or $(JOBS),2) -- $(ARGS)

# the test-only dependencies (requirements-test.txt) on top of the runtime ones
$(TEST_STAMP): $(VENV_STAMP) requirements-test.txt requirements-export.txt
	.venv/bin/pip install --quiet -r requirements-test.txt
	touch $(TEST_STAMP)

# each test runs single-threaded, so one test process per core pays; a test file's tests share a process
# (--dist loadfile), so a module's expensive fixture is built once
## test, test-fast, test-all: pytest-xdist processes (auto: one per core; 0: all in this process)
TEST_WORKERS ?= auto
PYTEST_PARALLEL = -n $(TEST_WORKERS) --dist loadfile

## the test suite, less the multi-process fault-injection trials (marker `slow`; `make test-all` runs them, CI calls it)
test: install $(TEST_STAMP)
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow" tests

## the unit tier for the edit-test loop: no end-to-end runs on the tiny project (marker `e2e`) and no slow trials
test-fast: install $(TEST_STAMP)
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow and not e2e" tests

## the whole suite: `make test`'s tests in parallel, then the slow trials one at a time (they spawn their own
## processes: a SLURM job, DDP ranks, killed workers); what CI runs
test-all: install $(TEST_STAMP)
	$(PY) -m pytest -q $(PYTEST_PARALLEL) -m "not slow" tests
	$(PY) -m pytest -q -m slow tests

## ruff check, ruff format --check and mypy on pipeline/, as configured in pyproject.toml
lint: install $(TEST_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

## speed, memory and size measurements into bench/results.json and bench/results.md
bench: install
	$(PY) -m stages.bench

## on a CUDA machine: AMP, GPU stage one, DDP, paper-size throughput -> bench/gpu_check.json
gpu-check: install
	$(PY) -m stages.gpu_check

## remove runs/, stores/, reports/, DATA_DIR and bench/results.json
clean:
	rm -rf runs stores reports $(DATA_DIR) bench/results.json

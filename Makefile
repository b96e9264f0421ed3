# cmkd-pipeline. Every target calls one thin driver in stages/; see README.md.
# Variables have defaults, so the bare commands work: DATASET is the embedded corpus unless given.

SHELL := /bin/bash
# idle OpenMP threads sleep instead of spinning: torch ran up to 35x slower on shared cores otherwise
export OMP_WAIT_POLICY ?= PASSIVE
PY := .venv/bin/python
VENV_STAMP := .venv/.installed

DATASET ?= demo
SIZE ?= 1.0
SEED ?= 0
DATA_DIR ?= data
# the embedded corpora live under data/; real datasets need DATA_ROOT
ifeq ($(DATASET),demo)
DATA_ROOT ?= $(DATA_DIR)/demo
FORMAT ?= fsd50k
else ifeq ($(DATASET),demo-esc50)
DATA_ROOT ?= $(DATA_DIR)/demo-esc50
FORMAT ?= esc50
else
DATA_ROOT ?=
FORMAT ?= $(if $(findstring audioset,$(DATASET)),audioset,$(if $(findstring esc50,$(DATASET)),esc50,$(if $(findstring fsd50k,$(DATASET)),fsd50k,$(DATASET))))
endif
CONFIG ?= configs/$(DATASET).yaml
MODEL ?=
RUN ?=
FOLD ?=
RESUME ?=
ARGS ?=
CROSSFIT ?=
TEACHER ?=
OUT ?=
VIEWS ?= 0
SCHEDULER ?=
WORKERS ?=
TOPK ?=
OVERWRITE ?=
LOGITS ?=
KD ?=
KD_LOSS ?=
LAMBDA ?=
TAU ?=
MISSING ?=
CHECKPOINT ?=
SEEDS ?= 1
DIRECTION ?=
CELLS ?=
LABELS ?=
AUDIOSET_SEGMENTS ?=
# audio check at `make manifests`: full (decode every sample) | header
CHECK ?= full

opt = $(if $(strip $(2)),$(1) "$(strip $(2))",)

.PHONY: install data manifests norm-stats pack teacher evaluate teacher-logits inspect student cmkd \
        demo test test-all bench gpu-check clean help

help:
	@echo "make demo | make test | make test-all | make data | make manifests | make norm-stats | make pack"
	@echo "make teacher | make evaluate | make teacher-logits | make inspect | make student | make cmkd"
	@echo "make bench | make gpu-check   (see README.md)"

install: $(VENV_STAMP)

# one pinned requirements file; the stamp makes a second `make install` do nothing
$(VENV_STAMP): requirements.txt
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/pip install --quiet --upgrade pip
	.venv/bin/pip install --quiet -r requirements.txt
	touch $(VENV_STAMP)

data: install
	$(PY) -m stages.make_data --out $(DATA_DIR) --size $(SIZE) --seed $(SEED)

manifests: install
	$(PY) -m stages.manifests --dataset $(DATASET) --format $(FORMAT) $(call opt,--data-root,$(DATA_ROOT)) \
		$(call opt,--labels,$(LABELS)) $(call opt,--segments,$(AUDIOSET_SEGMENTS)) --check $(CHECK)

norm-stats: install
	$(PY) -m stages.norm_stats --dataset $(DATASET) $(call opt,--config,$(wildcard $(CONFIG)))

pack: install
	$(PY) -m stages.pack --dataset $(DATASET)

teacher: install
	$(PY) -m stages.teacher --dataset $(DATASET) $(call opt,--config,$(wildcard $(CONFIG))) \
		$(call opt,--model,$(MODEL)) $(call opt,--run,$(RUN)) $(call opt,--fold,$(FOLD)) \
		$(call opt,--crossfit,$(CROSSFIT)) $(if $(RESUME),--resume,) -- $(ARGS)

evaluate: install
	$(PY) -m stages.evaluate --dataset $(DATASET) --checkpoint "$(CHECKPOINT)" -- $(ARGS)

teacher-logits: install
	$(PY) -m stages.teacher_logits --dataset $(DATASET) $(call opt,--teacher,$(TEACHER)) $(call opt,--out,$(OUT)) \
		--views $(VIEWS) $(call opt,--scheduler,$(SCHEDULER)) $(call opt,--workers,$(WORKERS)) \
		$(call opt,--topk,$(TOPK)) $(if $(OVERWRITE),--overwrite,) -- $(ARGS)

inspect: install
	$(PY) -m stages.inspect_store $(call opt,--dataset,$(DATASET)) $(call opt,--store,$(LOGITS))

student: install
	$(PY) -m stages.student --dataset $(DATASET) $(call opt,--config,$(wildcard $(CONFIG))) \
		$(call opt,--model,$(MODEL)) $(call opt,--run,$(RUN)) $(call opt,--fold,$(FOLD)) \
		$(call opt,--logits,$(LOGITS)) $(call opt,--teacher,$(TEACHER)) $(call opt,--kd,$(KD)) \
		$(call opt,--kd-loss,$(KD_LOSS)) $(call opt,--lambda,$(LAMBDA)) $(call opt,--tau,$(TAU)) \
		$(call opt,--missing,$(MISSING)) $(if $(RESUME),--resume,) -- $(ARGS)

cmkd: install
	$(PY) -m stages.cmkd --dataset $(DATASET) --seeds $(SEEDS) $(call opt,--fold,$(FOLD)) \
		$(call opt,--direction,$(DIRECTION)) $(call opt,--only,$(CELLS)) -- $(ARGS)

# the main job on the embedded corpus: corpus -> manifests -> teachers -> stores -> students -> table
demo: install
	$(PY) -m stages.make_data --out $(DATA_DIR) --size $(SIZE) --seed $(SEED)
	$(PY) -m stages.manifests --dataset demo --format fsd50k --data-root $(DATA_DIR)/demo
	$(PY) -m stages.manifests --dataset demo-esc50 --format esc50 --data-root $(DATA_DIR)/demo-esc50
	$(PY) -m stages.norm_stats --dataset demo --config configs/demo.yaml --max-clips 300
	$(PY) -m stages.cmkd --dataset demo --small --seeds 1

# `make test` leaves out the multi-process fault-injection trials (marker `slow`); CI runs test-all
test: install
	$(PY) -m pytest -q -m "not slow" tests

test-all: install
	$(PY) -m pytest -q tests

bench: install
	$(PY) -m stages.bench

gpu-check: install
	$(PY) -m stages.gpu_check

clean:
	rm -rf runs stores reports $(DATA_DIR) bench/results.json

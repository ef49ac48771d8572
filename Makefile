PYTHON ?= python3
PIP := $(PYTHON) -m pip
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install run test lint typecheck bench bench-quick pretrained pretrained-english pretrained-sentiment sentiment-teacher sentiment-checks soak clean

# torch first and pinned: its CPU wheel is on disk here, an unpinned torch pulls a multi-GB CUDA build.
install:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,export,plot,bench]'

run: install
	lstmtext generate --seed "The old house stood" --length 400 --random-state 1

test: install
	$(PYTHON) -m pytest -q

lint:
	ruff check lstmtext corpora tests benchmarks recipes examples
	ruff format --check lstmtext corpora tests benchmarks recipes examples
	mypy lstmtext

typecheck:
	mypy lstmtext

bench: install
	$(PYTHON) -m benchmarks

bench-quick: install
	$(PYTHON) -m benchmarks --quick

# The embedded model (lstmtext/pretrained/shakespeare) from ../shared/corpora: 30 minutes of training, then
# the best weights copied into the package as fp16.
pretrained: install
	lstmtext train ../shared/corpora/tinyshakespeare/input.txt --out runs/shakespeare --overwrite \
		--layers 2 --hidden 512 --embed 64 --dropout 0.2 --seq-len 100 --batch-size 64 --lr 2e-3 --warmup 30 --schedule cosine \
		--max-steps 1000 --max-time 30 --eval-every 100 --random-state 1
	$(PYTHON) -m lstmtext.pretrained.build runs/shakespeare lstmtext/pretrained/shakespeare

# The embedded general-English model (lstmtext/pretrained/english) from ../shared/corpora/english, read
# compressed: byte-level BPE of 8,000 tokens, 2 x 512 LSTM, 65 minutes of training on two cores (the
# shipped weights: Intel Xeon @ 2.80GHz, 3,048 steps), then fp16 into the package (20 MB). `train --from english`
# fine-tunes it.
pretrained-english: install
	lstmtext train ../shared/corpora/english/train.txt.gz --val ../shared/corpora/english/valid.txt.gz \
		--out runs/english --overwrite --level bpe --vocab-size 8000 --embed 256 --hidden 512 --layers 2 \
		--dropout 0.0 --softmax-cutoff 2000 --seq-len 70 --batch-size 64 --optimizer adam --lr 3e-3 \
		--schedule cosine --warmup 200 --max-time 65 --eval-every 1000 --patience 0 --ema 0.999 --threads 2 \
		--random-state 1
	$(PYTHON) -m lstmtext.pretrained.build runs/english lstmtext/pretrained/english

# The embedded sentiment model (lstmtext/pretrained/sentiment) from ../shared/corpora, ULMFiT's route on two
# cores, then distillation: the data (recipes/sentiment_data.py), a review language model on all the
# unlabelled review and opinion text (90 minutes), a classifier from it on the labelled mixture of every
# source (20 minutes, one thread), then that classifier taught by a 3 x 1024 teacher through its answers in
# recipes/teacher, on the mixture plus the LM's texts under the teacher's verdict (30 minutes), then fp16
# weights and a temperature fitted on the validation mix. `make sentiment-teacher` remakes the answers.
pretrained-sentiment: install
	$(PYTHON) -m recipes.sentiment_data --out runs/sentiment-data
	lstmtext train runs/sentiment-data/lm.txt --val runs/sentiment-data/lm-val.txt --out runs/review-lm --overwrite \
		--level bpe --vocab-size 12000 --embed 128 --hidden 256 --layers 1 --dropout 0.1 --embed-dropout 0.05 \
		--softmax-cutoff 2000 --batch-size 64 --seq-len 70 --optimizer adam --lr 3e-3 --schedule cosine \
		--warmup 200 --max-time 90 --eval-every 1000 --patience 0 --ema 0.999 --random-state 1
	lstmtext train-classifier runs/sentiment-data/train.tsv --val runs/sentiment-data/val.tsv \
		--from runs/review-lm --out runs/sentiment --overwrite --dropout 0.4 --embed-dropout 0.1 --batch-size 64 \
		--optimizer adamw --lr 3e-3 --weight-decay 0.01 --schedule cosine --warmup 100 --max-tokens 400 \
		--eval-every 500 --patience 0 --max-time 20 --threads 1 --random-state 1
	$(PYTHON) -m recipes.distill_data write --out runs/distill
	lstmtext train-classifier runs/distill/train.tsv --val runs/sentiment-data/val.tsv --from runs/sentiment \
		--teacher runs/distill/answers.jsonl --teacher-weight 0.9 --out runs/sentiment-student --overwrite \
		--dropout 0.4 --embed-dropout 0.1 --batch-size 64 --optimizer adamw --lr 1e-3 --weight-decay 0.01 \
		--schedule cosine --warmup 100 --max-tokens 400 --eval-every 1000 --patience 0 --max-time 30 \
		--threads 2 --random-state 1
	$(PYTHON) -m lstmtext.pretrained.build runs/sentiment-student lstmtext/pretrained/sentiment \
		--calibrate runs/sentiment-data/val.tsv

# On a CUDA GPU (one H200: 4.5 minutes of training): the teacher, a 3 x 1024 review LM and classifier
# (recipes/sentiment_teacher.sh), and its answers on every text in recipes/teacher. It uses the
# machine's own CUDA build of torch (with typer, rich, tokenizers, safetensors), so it installs nothing.
sentiment-teacher:
	$(PYTHON) -m recipes.sentiment_data --out runs/sentiment-data
	PYTHON=$(PYTHON) bash recipes/sentiment_teacher.sh runs/sentiment-data runs runs/sentiment lm teacher
	$(PYTHON) -m recipes.distill_data answer runs/teacher

# The sentiment figures no embedded model can give (about 125 minutes on two cores): MR's 10-fold
# cross-validation, from a review LM and a classifier of IMDb, Amazon and tweets that read no SST-2
# text (MR is SST's source), and the Amazon domain transfer, each domain left out of a classifier's training.
MR_CLASSIFIER := --dropout 0.4 --embed-dropout 0.1 --optimizer adamw --weight-decay 0.01 --schedule cosine \
	--patience 0 --threads 2
sentiment-checks: install
	$(PYTHON) -m recipes.sentiment_data --out runs/sentiment-data
	lstmtext train runs/sentiment-data/mr-lm.txt --val runs/sentiment-data/mr-lm-val.txt --out runs/mr/lm --overwrite \
		--level bpe --vocab-size 12000 --embed 128 --hidden 256 --layers 1 --dropout 0.1 --embed-dropout 0.05 \
		--softmax-cutoff 2000 --batch-size 64 --seq-len 70 --optimizer adam --lr 3e-3 --schedule cosine \
		--warmup 200 --max-time 40 --eval-every 1000 --patience 0 --ema 0.999 --random-state 1
	lstmtext train-classifier runs/sentiment-data/mr-base.tsv --val runs/sentiment-data/mr-base-val.tsv \
		--from runs/mr/lm --out runs/mr/base --overwrite $(MR_CLASSIFIER) --batch-size 64 --lr 3e-3 \
		--warmup 100 --max-tokens 400 --eval-every 500 --max-time 15 --random-state 1
	$(PYTHON) -m benchmarks.sentiment_quality mr-cv --minutes 15 --out runs/mr-cv \
		--tfidf-extra runs/sentiment-data/mr-base.tsv -- --from runs/mr/base $(MR_CLASSIFIER) --batch-size 32 \
		--lr 1e-3 --warmup 20 --max-tokens 128 --eval-every 50
	$(PYTHON) -m benchmarks.sentiment_quality mr-cv --minutes 15 --out runs/mr-cv-b -- --from runs/mr/base \
		$(MR_CLASSIFIER) --batch-size 32 --lr 1e-3 --warmup 20 --max-tokens 128 --eval-every 50 --random-state 101
	$(PYTHON) -m benchmarks.sentiment_quality mr-cv-ensemble runs/mr-cv runs/mr-cv-b
	$(PYTHON) -m benchmarks.sentiment_compare amazon-transfer --minutes 6 --out runs/amazon-transfer -- \
		--from runs/mr/lm $(MR_CLASSIFIER) --batch-size 64 --lr 3e-3 --warmup 100 --max-tokens 400 --eval-every 500 \
		--random-state 1

# SIGTERM/resume cycles against an uninterrupted run; LSTMTEXT_SOAK_MINUTES=30 by default.
soak: install
	$(PYTHON) -m pytest -q -s -m soak tests/test_soak.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache

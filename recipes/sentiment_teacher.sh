#!/usr/bin/env bash
# On a CUDA GPU: the teacher of the embedded sentiment model, a 3 x 1024 review language model
# and classifier (`make sentiment-teacher` runs `lm teacher`, then stores the teacher's answers);
# `student` distils it into a copy of the 1 x 256 classifier on the GPU (the CPU recipe,
# `make pretrained-sentiment`, does that from the stored answers instead); `tweets` trains a
# negative/neutral/positive classifier on the teacher's language model.
#
#   bash recipes/sentiment_teacher.sh DATA RUNS [START [STAGE ...]]
#
# DATA: the folder of `python -m recipes.sentiment_data` (lm.txt, train.tsv, val.tsv,
# tweets-train.tsv, ...). RUNS: where the runs go (RUNS/teacher-lm, RUNS/teacher,
# RUNS/student, RUNS/tweets3). START: the small classifier the student starts from
# (default RUNS/sentiment). STAGE: lm, teacher, student or tweets (default: all four, in this
# order). Minutes per stage come from the environment (LM_MINUTES, TEACHER_MINUTES,
# STUDENT_MINUTES, TWEETS_MINUTES); the defaults are those of the run in BENCHMARKS.md, on one
# H200; BENCHMARKS.md also says what the language model would take on two CPU cores.
set -euo pipefail
data=${1:?DATA folder}
runs=${2:?RUNS folder}
start=${3:-$runs/sentiment}
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
stages=("${@:4}")
[ ${#stages[@]} -gt 0 ] || stages=(lm teacher student tweets)

lm() {
$python -m lstmtext train "$data/lm.txt" --val "$data/lm-val.txt" --out "$runs/teacher-lm" --overwrite \
	--level bpe --vocab-size 12000 --embed 400 --hidden 1024 --layers 3 --dropout 0.2 --embed-dropout 0.1 \
	--batch-size 256 --seq-len 70 --optimizer adam --lr 2e-3 --schedule cosine --warmup 300 \
	--max-time "${LM_MINUTES:-3}" --eval-every 1000 --patience 0 --ema 0.999 --random-state 1 --device "$device"
}

teacher() {
$python -m lstmtext train-classifier "$data/train.tsv" --val "$data/val.tsv" --from "$runs/teacher-lm" \
	--out "$runs/teacher" --overwrite --dropout 0.4 --embed-dropout 0.1 --batch-size 128 \
	--optimizer adamw --lr 1.5e-3 --weight-decay 0.01 --schedule cosine --warmup 200 --max-tokens 400 \
	--eval-every 400 --patience 0 --max-time "${TEACHER_MINUTES:-1.5}" --random-state 1 --device "$device"
}

student() {
$python -m lstmtext train-classifier "$data/train.tsv" --val "$data/val.tsv" --from "$start" \
	--teacher "$runs/teacher" --teacher-weight 0.7 \
	--out "$runs/student" --overwrite --dropout 0.4 --embed-dropout 0.1 --batch-size 64 \
	--optimizer adamw --lr 1e-3 --weight-decay 0.01 --schedule cosine --warmup 100 --max-tokens 400 \
	--eval-every 500 --patience 0 --max-time "${STUDENT_MINUTES:-1.25}" --random-state 1 --device "$device"
}

tweets() {
$python -m lstmtext train-classifier "$data/tweets-train.tsv" --val "$data/tweets-val.tsv" \
	--from "$runs/teacher-lm" --out "$runs/tweets3" --overwrite --dropout 0.4 --embed-dropout 0.1 \
	--batch-size 64 --optimizer adamw --lr 1e-3 --weight-decay 0.01 --schedule cosine --warmup 100 \
	--eval-every 200 --patience 0 --max-time "${TWEETS_MINUTES:-0.5}" --random-state 1 --device "$device"
}

for stage in "${stages[@]}"; do
	case $stage in
	lm | teacher | student | tweets) "$stage" ;;
	*) echo "sentiment_teacher.sh: unknown stage $stage (lm, teacher, student, tweets)" >&2; exit 2 ;;
	esac
done

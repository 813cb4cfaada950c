#!/usr/bin/env bash
# The paper's cell-space runs end to end: search -> derive -> (bench-query). Called by `make reproduce-*`.
# SPACE (nb201|darts), OPT, DATASET, SEED, FAST (1: a few CPU minutes), DATA (a torchvision data root, or
# an image folder with train/ and test/), BENCH (benchmark table, NB201 only), RUNS (output folder).
set -euo pipefail
: "${SPACE:?}" "${OPT:=drnas}" "${DATASET:=cifar10}" "${SEED:=9001}" "${RUNS:=runs/reproduce}" "${PYTHON:=python3}"
tanglenas() { "$PYTHON" -m tanglenas_cli "$@"; }

args=(--preset "${SPACE}-cifar10-${OPT}" --seed "$SEED")
dataset_args=(--dataset "$DATASET")
if [ -n "${DATA:-}" ]; then
  if [ -d "$DATA/train" ] && [ -d "$DATA/test" ]; then
    dataset_args=(--dataset imagefolder --set "dataset_options.path=$DATA")  # e.g. the CIFAR-10 JPEG tree
  else
    dataset_args+=(--data-root "$DATA")
  fi
fi
if [ -n "${FAST:-}" ]; then  # the same pipeline, shrunk to about a minute on 2 CPU cores
  if [ "$SPACE" = nb201 ]; then
    args+=(--set epochs=3 --set train_subset=6000 --set batch_size=128 --set space_options.C=8 --set space_options.N=1)
  else
    args+=(--set epochs=2 --set train_subset=2000 --set batch_size=64 --set space_options.C=4 --set space_options.layers=3)
  fi
fi
bench="${BENCH:-${TANGLENAS_DATA_ROOT:-$HOME/.cache/tanglenas/data}/benchmarks/nb201.csv}"
if [ "$SPACE" = nb201 ] && [ -e "$bench" ]; then args+=(--benchmark "$bench"); fi  # looked up every epoch
run="$RUNS/${SPACE}-${OPT}-${DATASET}-s${SEED}${FAST:+-fast}"
if [ -f "$run/checkpoint.pt" ]; then
  tanglenas search --resume "$run"
else
  tanglenas search "${args[@]}" "${dataset_args[@]}" --out "$run"
fi
tanglenas derive "$run"
if [ "$SPACE" = nb201 ]; then
  echo
  echo "== $SPACE / $OPT / $DATASET: derived architecture in the benchmark ($bench) =="
  tanglenas bench-query "$run" --benchmark "$bench" --dataset "$DATASET"
fi

#!/usr/bin/env bash
# The IsoFLOP study (A3 §2-3; bench/scaling/isoflop_study.py) on one GPU, in 10-minute calls of the device tool
# that resume while the machine stays warm (the data and the training API's state live in $STUDY):
#
#   bash bench/scaling/isoflop_study_gpu.sh corpus            # here, once: .corpus/linux-text.txt.xz
#   bash bench/scaling/isoflop_study_gpu.sh data study        # device, .corpus and .whl-api carried
#   bash bench/scaling/isoflop_study_gpu.sh study             # device, .whl-api carried: again until the table
#   bash bench/scaling/isoflop_study_gpu.sh context           # device: loss by position, copying (context_use.py)
#   OUT=results bash bench/scaling/isoflop_study_gpu.sh collect
#
# The corpus: real text from the Linux 6.1 sources (Debian's linux-source-6.1, GPL-2.0: bench/tokenizer/corpora.py),
# CORPUS_MB of it, 1% of its files held out for validation, both splits cut into shuffled pieces of ~4 KB
# (bench/scaling/study_data.py says why); a byte-level BPE of VOCAB tokens trained on the training split.
# No token is read twice (the training API's order), so every run's tokens must fit the training split (~110M
# tokens of 300 MB): the budgets and --span 3 keep the largest profile's smallest model within it (D = C / 6N, N
# with the LM head: 4096 · d_model, which also sets the smallest model, 143K at d_model 32). .whl-api: FastAPI, uvicorn and
# their dependencies as cp312 wheels (pip download, README of the device tool), for the training API's server.
set -euo pipefail
cd "$(dirname "$0")/../.."
STUDY=${STUDY:-/tmp/isoflop}
MINUTES=${MINUTES:-8.5}
CORPUS_MB=${CORPUS_MB:-300}
VOCAB=${VOCAB:-4096}
BUDGETS=${BUDGETS:-"1e13 3e13 1e14"}
PREDICT=${PREDICT:-1e15}
# Enough optimizer steps that a run's loss says how good its size is, not how few steps its batch left it (the
# second sweep, at the default 50, had runs of 40-80 steps and its smallest models won every budget).
MIN_STEPS=${MIN_STEPS:-1000}
LEARNING_RATE=${LEARNING_RATE:-3e-3}
# The shape family: one shape per width (n_layer = d_model / ASPECT_RATIO) so that N alone sets it; empty for every
# shape with d_model / n_layer in [16, 128] (the 2026-12-04 studies: there the shape mattered as much as N).
ASPECT_RATIO=${ASPECT_RATIO-32}
MAX_BATCH_SIZE=${MAX_BATCH_SIZE:-128}
N_EVALS=${N_EVALS:-4}  # validation points per run: 16 to see where a curve bends
# Several experiments at once on one GPU: the sweep's small models leave most of an H200 idle.
DEVICES=${DEVICES:-cuda:0,cuda:0,cuda:0}
export PYTHONUNBUFFERED=1
prepare() {  # on the device: the carried wheels (cp312) into /tmp/site
    if [ -d .whl-api ] && [ -z "${PREPARED:-}" ]; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .whl-api/*.whl
        export PYTHONPATH=/tmp/site:$PWD PREPARED=1
    fi
}

for stage in "$@"; do
    case $stage in
        corpus)
            mkdir -p .corpus
            text=$(python3 -c "from bench.tokenizer.corpora import linux_text; print(linux_text($CORPUS_MB * 10**6))" |
                   tail -1)
            xz -T0 -9 -c "$text" > .corpus/linux-text.txt.xz
            ls -l .corpus ;;
        data)
            prepare
            mkdir -p "$STUDY/data"
            xz -dc .corpus/linux-text.txt.xz > "$STUDY/linux.txt"
            python3 -m bench.scaling.study_data "$STUDY/linux.txt" "$STUDY"
            python3 -c "from impl.programs.tokenizer import train_main; import sys; sys.exit(train_main(
                ['--input', '$STUDY/train.txt', '--vocab-size', '$VOCAB', '--out', '$STUDY/data/tok']))"
            for split in train valid; do
                python3 -c "from impl.programs.tokenizer import tokenize_main; import sys; sys.exit(tokenize_main(
                    ['--tokenizer', '$STUDY/data/tok', '--input', '$STUDY/$split.txt',
                     '--out', '$STUDY/data/$split.npy']))"
            done ;;
        study)
            prepare
            python3 -m bench.scaling.isoflop_study --data-dir "$STUDY/data" --out "$STUDY/out" --budgets $BUDGETS \
                --predict "$PREDICT" --span 3 --min-steps "$MIN_STEPS" --learning-rate "$LEARNING_RATE" \
                --n-evals "$N_EVALS" --max-batch-size "$MAX_BATCH_SIZE" ${ASPECT_RATIO:+--aspect-ratio "$ASPECT_RATIO"} \
                --devices "$DEVICES" --max-minutes "$MINUTES" ;;
        context)  # after study: how much of its context each run uses (bench/scaling/context_use.py says why)
            python3 -m bench.scaling.context_use --experiments "$STUDY/out/api/experiments" \
                --valid "$STUDY/data/valid.npy" --out "$STUDY/out/context" ;;
        collect)
            mkdir -p "$OUT"
            # The device returns 8 files at most, the call's logs among them: COLLECT picks others.
            for file in ${COLLECT:-study.md study.json fit/results.json fit/n_opt.png fit/d_opt.png fit/isoflops.png \
                                   api/state.sqlite}; do
                [ -f "$STUDY/out/$file" ] && cp "$STUDY/out/$file" "$OUT/$(basename "$file")"
            done
            true ;;
        *) echo "unknown stage $stage (corpus, data, study, context, collect)" >&2; exit 2 ;;
    esac
done

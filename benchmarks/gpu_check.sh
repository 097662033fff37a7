#!/usr/bin/env bash
# Every GPU measurement the project has, in one run, its figures in one file: on one H100 it is sized to take
# under 8 minutes. Whoever is lent a GPU runs it and copies the figures into docs/performance.md.
#
#   benchmarks/gpu_check.sh [FILE]           on a GPU: Stable Diffusion 1.5's architecture at 512 px in float16
#   benchmarks/gpu_check.sh --tiny [FILE]    on a CPU, tiny sizes: to know that the script runs (about 3 minutes)
#
# FILE defaults to gpu_check.txt ($OUT/gpu_check.txt when $OUT is set, as on the device machine).
#   1. text to image, the app against plain diffusers, eager and compiled (bench_text2img.py --compile)
#   2. the few-step path: an LCM-LoRA at 4 steps with TAESD against 25 steps with CFG (bench_few_step.py)
#   3. pixel-space sampling, the app against DDPMPipeline / DDIMPipeline (bench_sampling.py)
#   4. one generation worker per GPU: requests at once against in turn (bench_workers.py)
# A benchmark that fails or misses its target is reported and the next one still runs; the exit status is the
# number of those.
set -uo pipefail
cd "$(dirname "$0")/.."

tiny=0
if [[ "${1:-}" == "--tiny" ]]; then
    tiny=1
    shift
fi
figures="${1:-${OUT:-.}/gpu_check.txt}"
: > "$figures"
failures=0

run() {  # run LABEL COMMAND...: the command's output to the terminal and to the figures file
    echo "== $1" | tee -a "$figures"
    echo "\$ ${*:2}" | tee -a "$figures"
    local start=$SECONDS
    "${@:2}" 2>&1 | grep -v -e "Warning" -e "warnings.warn" -e "it/s\]" | tee -a "$figures"
    local status=${PIPESTATUS[0]}
    echo "(exit $status, $((SECONDS - start)) s)" | tee -a "$figures"
    echo | tee -a "$figures"
    [[ $status -eq 0 ]] || failures=$((failures + 1))
}

{
    echo "gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'GPUs', torch.cuda.device_count())"
    echo
} | tee -a "$figures"

if [[ $tiny -eq 1 ]]; then
    run "text to image, eager and compiled (tiny, CPU)" \
        python benchmarks/bench_text2img.py --size 64 --steps 4 --repeats 1 --switches 1 --compile
    run "few steps: LCM-LoRA + TAESD against 25 steps + CFG (tiny, CPU)" \
        python benchmarks/bench_few_step.py --tiny --size 64
    run "pixel-space sampling (CPU)" \
        python benchmarks/bench_sampling.py --steps 5 --batch-sizes 1 --repeats 1 --ddim-steps 5 --ddpm-steps 10
    run "one worker per device (two on the CPU)" \
        python benchmarks/bench_workers.py --devices cpu cpu --size 64 --steps 4
else
    run "text to image, SD 1.5 architecture, 512 px, float16, eager and compiled" \
        python benchmarks/bench_text2img.py --sd15 --device cuda --dtype float16 --size 512 --steps 25 --repeats 3 \
        --switches 2 --compile
    run "few steps: LCM-LoRA + TAESD against 25 steps + CFG, SD 1.5 architecture, 512 px, float16" \
        python benchmarks/bench_few_step.py --device cuda --dtype float16 --size 512 --repeats 3
    run "pixel-space sampling on the GPU" \
        python benchmarks/bench_sampling.py --device cuda --steps 50 --repeats 3 --ddpm-steps 200
    run "one worker per GPU, SD 1.5 architecture, 512 px, float16" \
        python benchmarks/bench_workers.py --device cuda --dtype float16 --sd15 --size 512 --steps 25
fi

echo "$failures benchmark(s) failed or missed their target; figures in $figures" | tee -a "$figures"
exit "$failures"

#!/usr/bin/env bash
# A run on a Slurm cluster: one array task per slice of the plan (--shard i/N, every slice
# writing into the same output folder), then one report job that starts when every slice
# has finished and merges them. Run from the repository root:
#
#   benchmarks/slurm/array.sh CONFIG N OUT [benchmarks.run flags...]
#   benchmarks/slurm/array.sh paper-suite 8 results/paper --device cuda
#
# SBATCH_ARGS (e.g. "--partition=gpu --time=04:00:00") goes to both sbatch calls, and
# GPUS_PER_TASK (default 1; 0 on CPU nodes) to the slices. DRY_RUN=1 prints the command
# line of each slice and of the report, one a line, instead of submitting anything.
# A slice that was killed resumes where it stopped: resubmit the array (same N).
set -euo pipefail

if [[ $# -lt 3 ]]; then
    sed -n '2,12p' "$0" >&2
    exit 2
fi
config=$1 slices=$2 out=$3
shift 3
extra=""
if (($#)); then extra=$(printf ' %q' "$@"); fi
run="python -m benchmarks.run --config $(printf %q "$config") --out $(printf %q "$out")$extra --quiet"
report="python -m benchmarks.report $(printf %q "$out")"

if [[ ${DRY_RUN:-0} == 1 ]]; then
    for ((index = 0; index < slices; index++)); do
        echo "$run --shard $index/$slices"
    done
    echo "$report"
    exit 0
fi

gpus=${GPUS_PER_TASK:-1}
array=$(sbatch --parsable ${SBATCH_ARGS:-} --array="0-$((slices - 1))" --job-name=signed-saliency \
    $([[ $gpus -gt 0 ]] && echo "--gres=gpu:$gpus") \
    --wrap="$run --shard \$SLURM_ARRAY_TASK_ID/$slices")
final=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency="afterok:${array%%;*}" --job-name=signed-saliency-report \
    --wrap="$report")
echo "submitted slices as job $array and the report as job $final (it runs once every slice has succeeded)"

#!/usr/bin/env bash
# What a session lent a GPU runs: two commands, ~13 minutes of the ~15 a task is lent (#29).
#
# Here, once (the kit and the data travel in the ignored .kit/, ~48 MiB with the checkout):
#   python -m bench.device.kit build && python -m bench.device.kit data --data-root ../shared/datasets/cifar10-jpeg
#   python -m pytest tests/bench/device -q          # the kit, the script's CPU paths
# There, as the device tool's `run` with carry [".kit"], the second within the machine's warm
# window (30 s) so it finds the unpacked kit and data (it unpacks them again otherwise):
#   bash bench/device/gpu_session.sh 1 "$OUT"     # timeout_s 590: default.yaml end to end, fast.yaml
#   bash bench/device/gpu_session.sh 2 "$OUT"     # timeout_s 300: airbench94 vs ours, packing, engine
#
# Every step has its own time cap, so one slow step cannot take the others' time; each writes
# its JSON into OUT as it ends and its output into OUT/session.log, so a step cut off loses
# only itself. OUT/steps.jsonl holds each step's exit code and seconds.
set -u
part=${1:?PART (1 or 2)}
out=${2:?OUT_DIR}
kit=${KIT:-.kit}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
log="$out/session.log"

step() {  # step NAME SECONDS CMD...: run CMD under a time cap
    local name=$1 cap=$2
    shift 2
    echo "=== $name (cap ${cap}s): $*" | tee -a "$log"
    local t0=$SECONDS
    timeout --signal=INT --kill-after=15 "$cap" "$@" >>"$log" 2>&1
    local rc=$?
    echo "=== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$log"
    printf '{"step": "%s", "exit": %d, "seconds": %d, "cap_s": %d}\n' \
        "$name" "$rc" "$((SECONDS - t0))" "$cap" >>"$out/steps.jsonl"
    return $rc
}

# The kit (Ray, Optuna, pydantic, airbench for this Python) and the data, unless already there.
python3 -m bench.device.kit install --kit "$kit" --target /tmp/hpsearch-kit || exit 3
export PYTHONPATH="/tmp/hpsearch-kit:$PWD"
data=/tmp/hpsearch-data/cifar10-jpeg
if [ ! -f "$data/PROVENANCE.md" ]; then
    mkdir -p "$data.part" && tar -xJf "$kit/cifar10-jpeg.tar.xz" -C "$data.part" && mv "$data.part" "$data" || exit 3
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee -a "$log"
python3 -c 'import sys, torch, ray, optuna; print(sys.version.split()[0], torch.__version__,
    torch.version.cuda, "ray", ray.__version__, "optuna", optuna.__version__)' | tee -a "$log"

results=/tmp/hpsearch-results
keep() {  # keep NAME: a search's small files (no checkpoints) as OUT/NAME.tgz
    tar -czf "$out/$1.tgz" -C "$results" --exclude='*.pt' --exclude='checkpoint_*' "$1" 2>>"$log"
}

if [ "$part" = 1 ]; then
    # The mission's entry point, end to end: 48 trials at 0.25 GPU, retrain x3, test, export.
    # Its search budget is cut to 4 minutes so the whole run fits the command's 10.
    step default 420 python3 -m tuner run search_spaces/default.yaml --data-root "$data" \
        --storage-path "$results" --set time_budget_s=240 --no-dashboard
    keep cifar10-default
    step fast 140 python3 -m tuner run search_spaces/fast.yaml --data-root "$data" \
        --storage-path "$results" --set time_budget_s=60 --no-dashboard
    keep cifar10-fast
elif [ "$part" = 2 ]; then
    step airbench 130 python3 -m bench.device.airbench --data-root "$data" --runs 2 \
        --json "$out/airbench.json"
    step packing 90 python3 -m bench.device.packing --data-root "$data" --concurrency 1,2,4,8 \
        --json "$out/packing.json"
    step engine_overhead 50 python3 -m bench.trainer.engine_overhead \
        --config configs/cifar10_fastnet.yaml --set device=cuda --set dataset.synthetic_train_size=50000 \
        --set eval_batch_size=2000 --set epochs=6 --json "$out/engine_overhead_gpu.json"
else
    echo "PART is 1 or 2" >&2
    exit 2
fi

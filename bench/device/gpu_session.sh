#!/usr/bin/env bash
# What a session lent a GPU runs, in one call (device time is scarce: ~15 min per task).
#
#   bash bench/device/gpu_session.sh DATA_ROOT OUT_DIR
#
# Expects python3 with torch/torchvision/numpy/PyYAML/pydantic importable (on the lent machine:
# its own python3 plus carried pydantic wheels) and DATA_ROOT the CIFAR-10 JPEG copy. Each step
# has its own time cap so one slow step cannot take the others' time; each writes its JSON and
# log into OUT_DIR as it ends, so a step cut off loses only itself.
#   1. bench/device/gpu.py: ceilings, FLOPs, the fastnet recipe on all 50,000 images with the test
#      split read after every epoch (3 seeds), host syncs, packed trials (1, 2, 4).
#   2. bench/trainer/engine_overhead.py: the trainer against a bare loop, same net, batch, precision.
#   3. bench/device/gpu.py --compile: the same with torch.compile, compile time apart (1 seed).
set -u
data=${1:?DATA_ROOT}
out=${2:?OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

step() {  # step NAME SECONDS CMD...: run CMD under a time cap, log to OUT_DIR/NAME.log
    local name=$1 cap=$2
    shift 2
    echo "=== $name (cap ${cap}s): $*"
    local t0=$SECONDS
    timeout --signal=INT --kill-after=10 "$cap" "$@" >"$out/$name.log" 2>&1
    echo "=== $name: exit $? after $((SECONDS - t0)) s"
    tail -n 40 "$out/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv | tee "$out/nvidia_smi.txt"
python3 -c 'import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda)'

step gpu 270 python3 -m bench.device.gpu --data-root "$data" --seeds 3 --concurrency 1,2,4 \
    --pack-epochs 2 --json "$out/gpu.json"
step engine_overhead 60 python3 -m bench.trainer.engine_overhead --config configs/cifar10_fastnet.yaml \
    --set device=cuda --set dataset.synthetic_train_size=50000 --set eval_batch_size=2000 \
    --set epochs=6 --json "$out/engine_overhead_gpu.json"
step gpu_compile 150 python3 -m bench.device.gpu --data-root "$data" --compile --concurrency 1 \
    --pack-epochs 1 --json "$out/gpu_compile.json"

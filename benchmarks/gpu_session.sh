#!/usr/bin/env bash
# GPU measurements (dataset build time and expert returns, learner throughput, a cheetah-vel
# sweep row, the paper tables), sized to fit the device tool's 10-minute calls.
#
# Here (once per session, on the machine with pip access):
#   benchmarks/fetch_gpu_wheels.sh            # mujoco, mjx, brax, ... wheels into .whl/ (~22 MB)
# Then one device call per phase group, carrying .whl (each call stops itself before BUDGET_S):
#   run(command="benchmarks/gpu_session.sh check learner", carry=[".whl"])
#   run(command="benchmarks/gpu_session.sh collect datasets", carry=[".whl"])
#   run(command="benchmarks/gpu_session.sh datasets sweep", carry=[".whl"])   # resumes datasets
#   run(command="PAPER_PROFILE=cpu PAPER_SEEDS=3 benchmarks/gpu_session.sh paper", carry=[".whl"])
# and copy what comes back ($OUT: *_<device>.json, gpu_session.log, sweep_table.tgz) into
# benchmarks/results/. A warm machine keeps data/ and .jax_cache/ between calls, so killed
# dataset builds resume and compiled programs are reused; a fresh machine starts over.
#
# Phases:
#   check     nvidia-smi, jax devices, the library's shape/equivalence tests on the GPU
#   learner   benchmarks.learner_throughput (PRESETS, SEEDS, CHUNK), rows merged across calls
#   offline   benchmarks.offline_throughput: BC/TD3+BC/CQL/IQL/MISA (HMC, importance,
#             none) at D4RL scale, OFFLINE_SEEDS seeds vmapped
#   collect   benchmarks.collect_throughput at GPU sizes (COLLECT_ENVS)
#   envs      benchmarks.env_throughput, MJX on the GPU beside `c` (C MuJoCo on the host's cores
#             through one callback per step, i.e. a device-host round trip) at ENV_BATCHES
#             (default 64,4096): the figures behind physics="auto" keeping MJX on a GPU
#   datasets  benchmarks.dataset_build: full default datasets (DATA_ENVS) under data/full
#   sweep     SWEEP_ALGOS x SWEEP_ENV (cheetah_vel), SWEEP_SEEDS seeds vmapped, SWEEP_STEPS updates, + table
#   paper     the UNICORN-Table-2-style table at PAPER_PROFILE (default paper = full scale) for
#             PAPER_ENV (default cheetah_vel): `python -m experiments.paper`, i.e. `make paper
#             ENV=... PROFILE=paper` — per-task SAC data (40 agents x 1e6 env steps, UNICORN Table 7
#             sizes), the seven presets x PAPER_SEEDS (6, as UNICORN) x 200k updates, IID / OOD /
#             z-shuffle / diagnostics, table in benchmarks/results/paper_<profile>/<env>.
#             PAPER_ALGOS (comma list) replaces the seven rows, e.g. adding macaw,prompt_dt
#             (UNICORN Table 2's other families; Prompt-DT on cheetah_vel/cheetah_dir/ant_dir).
#             Resumable: every call continues where the last one stopped (dataset work dir,
#             checkpoints), as long as the machine stays warm (data/ and runs/ live on it).
#             Runbook (GPU): 1) `paper` with PAPER_PROFILE=cpu first (minutes; checks the whole
#             path on the device and gives a GPU-vs-CPU time for the same table); 2) then
#             PAPER_PROFILE=paper in repeated calls. Estimate before starting: the per-task SAC
#             data is 40 x 1e6 env steps and 40 x 5e5 updates per env (UNICORN trains each agent
#             separately for hours on a GPU); the 7 x 200k-update presets are ~1.4M learner
#             updates. It does not fit a 15-minute device lease: run it where a GPU is held for
#             hours (same command), and use the lease for the cpu-profile check and timings.
set -u
cd "$(dirname "$0")/.." || exit 1
start=$SECONDS
budget=${BUDGET_S:-560}
left() { echo $((budget - (SECONDS - start))); }
PY=${PY:-python3}
log=${OUT:-/tmp}/gpu_session.log

if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export JAX_COMPILATION_CACHE_DIR=$PWD/.jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0.5
export XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1

bring_back() {  # the device tool returns at most 8 files from $OUT
  [ -n "${OUT:-}" ] || return 0
  for f in benchmarks/results/*.json; do
    case "$f" in *_cpu.json) ;; *) cp "$f" "$OUT"/ ;; esac
  done
  [ -d runs/gpu_sweep/table ] && tar czf "$OUT"/sweep_table.tgz -C runs/gpu_sweep table
  ls -d benchmarks/results/paper_* >/dev/null 2>&1 && \
    tar czf "$OUT"/paper_tables.tgz benchmarks/results/paper_*
  return 0
}
trap bring_back EXIT

step() {  # step NAME CMD...: runs CMD with the time left (minus a margin for copying back)
  local name=$1; shift
  local t=$(($(left) - 20))
  if [ "$t" -le 30 ]; then echo "== $name: skipped, ${t}s left" | tee -a "$log"; return 0; fi
  echo "== $name ($t s left): $*" | tee -a "$log"
  timeout "$t" "$@" 2>&1 | tee -a "$log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$log"
}

for phase in "$@"; do
  case "$phase" in
    check)
      step nvidia-smi nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
      step jax $PY -c "import jax, brax, mujoco; from mujoco import mjx; print(jax.devices(), jax.__version__, brax.__version__, mujoco.__version__)"
      step tests $PY -m pytest -q -x tests/test_algos.py tests/test_dt.py tests/test_macaw.py \
        tests/test_encoders.py \
        -k "hand_computed or vmapped or two_seeds or without_nan or causal_mask or inner_steps or outer_gradient or order_sensitivity"
      ;;
    learner)
      step learner $PY -m benchmarks.learner_throughput --merge --chunk="${CHUNK:-100}" \
        --repeats=3 --seeds="${SEEDS:-1,4,16,64}" \
        --presets="${PRESETS:-unicorn_ss+dual3,unicorn_ss,focal,csro,corro,unicorn_sup,supervised,oracle,macaw,prompt_dt,unicorn_ss_dt}"
      ;;
    offline)
      step offline $PY -m benchmarks.offline_throughput --chunk="${CHUNK:-100}" --repeats=3 \
        --seeds="${OFFLINE_SEEDS:-1,4,16}"
      ;;
    collect)
      step collect $PY -m benchmarks.collect_throughput \
        --envs="${COLLECT_ENVS:-point_robot,cheetah_vel,cheetah_dir,ant_dir,hopper_param,walker_param}" \
        --train_envs=2048 --train_batch=512 --minibatches=32 --unroll=20 \
        --train_steps_per_epoch=4 --episodes=25 --sac_envs=cheetah_vel
      ;;
    envs)
      step envs $PY -m benchmarks.env_throughput --physics="${ENV_PHYSICS:-mjx,c}" \
        --batch_sizes="${ENV_BATCHES:-64,4096}" --steps=100 --use_cache
      ;;
    datasets)
      step datasets $PY -m benchmarks.dataset_build --data_root=data/full \
        --envs="${DATA_ENVS:-cheetah_vel,cheetah_dir,ant_dir,hopper_param,walker_param}"
      ;;
    sweep)
      step sweep $PY -m experiments.sweep --algos="${SWEEP_ALGOS:-focal csro unicorn_ss unicorn_sup}" \
        --envs="${SWEEP_ENV:-cheetah_vel}" --seeds="${SWEEP_SEEDS:-6}" --runs_root=runs/gpu_sweep \
        --dataset='data/full/{env}' --set="num_steps=${SWEEP_STEPS:-20000}"
      step table $PY -m experiments.table --runs_root=runs/gpu_sweep --out=runs/gpu_sweep/table \
        --protocols=iid,ood
      ;;
    paper)
      step paper $PY -m experiments.paper --env="${PAPER_ENV:-cheetah_vel}" \
        --profile="${PAPER_PROFILE:-paper}" --seeds="${PAPER_SEEDS:-6}" \
        ${PAPER_ALGOS:+--algos="$PAPER_ALGOS"} \
        --out="benchmarks/results/paper_${PAPER_PROFILE:-paper}_gpu/${PAPER_ENV:-cheetah_vel}"
      ;;
    *) echo "unknown phase $phase (check learner offline collect envs datasets sweep paper)"; exit 2 ;;
  esac
done

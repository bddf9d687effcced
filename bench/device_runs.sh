#!/usr/bin/env bash
# The issues' 10-minute training runs, spread over the GPUs of the machine: each run has one GPU to itself
# (CUDA_VISIBLE_DEVICES) and a GPU takes the next run of the queue when its last one ends. One GPU runs the queue
# in turn (through bench/device_bg.sh: ~110 minutes for all ten); eight run eight at once.
#
# Staged by bench/stage_device.sh (PEERS=1 DATA=1) on the dev machine; carry .devpack:
#   device run: bash bench/device_unpack.sh && bash bench/device_bg.sh start 'OUT=/tmp/bg/out bash bench/device_runs.sh'
#     && bash bench/device_bg.sh wait 560            then at once: bash bench/device_bg.sh wait 590, and so on
# Environment (defaults in brackets):
#   RUNS [ssm peer transformer hybrid patching-mean patching-attn patching-none patching-local patching-soft
#         patching-entropy]  in order of need:
#     ssm, transformer, hybrid   issue 5's families (device_families.sh); the ssm row is issue 3's bytelm side
#     peer                       issue 3's PyTorch side for ssm-10m (device_ssm_wallclock.sh SIDES=peer)
#     patching-<variant>         issue 4's study, one variant a run (device_patching.sh STUDY=<variant> CHECKS=0)
#   SECS [600] training seconds a run; OUT [/tmp/bytelm_out]: each run writes OUT/<run>/ (and its log, run.log)
set -uo pipefail
export LD_LIBRARY_PATH="$PWD/.devlib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
out="${OUT:-/tmp/bytelm_out}"; mkdir -p "$out"
SECS="${SECS:-600}"
RUNS="${RUNS:-ssm peer transformer hybrid patching-mean patching-attn patching-none patching-local patching-soft patching-entropy}"
# The corpus once, before any run reads it (each run's own unpack then finds it in place).
bash bench/unpack_corpus.sh /tmp/bytelm_data || exit 1

run_one() {  # name gpu: one run on one GPU, its output in $out/name (made by the caller, for run.log)
  local name=$1
  export CUDA_VISIBLE_DEVICES=$2 OUT="$out/$1" WORK="/tmp/runs/$1" SECS
  mkdir -p "$WORK"
  case $name in
    ssm) RUNS=ssm=ssm-10m bash bench/device_families.sh ;;
    transformer) RUNS=transformer=transformer-10m bash bench/device_families.sh ;;
    hybrid) RUNS=hybrid=hybrid-10m bash bench/device_families.sh ;;
    peer) SIDES=peer bash bench/device_ssm_wallclock.sh ;;
    patching-*) STUDY=${name#patching-} CHECKS=0 bash bench/device_patching.sh ;;
    *) echo "unknown run $name" >&2; return 2 ;;
  esac
}

gpus=$(nvidia-smi -L | grep -c '^GPU')
((gpus > 0)) || { echo "no GPU" >&2; exit 1; }
queue=($RUNS)
declare -a slot_pid slot_name
next=0 failed=0
while :; do
  for ((g = 0; g < gpus; g++)); do
    pid=${slot_pid[g]:-}
    if [[ -n $pid ]] && ! kill -0 "$pid" 2> /dev/null; then
      wait "$pid"; rc=$?
      echo "$(date -u +%T) end   ${slot_name[g]} on GPU $g: exit $rc"
      ((rc == 0)) || failed=1
      slot_pid[g]=""
    fi
    if [[ -z ${slot_pid[g]:-} ]] && ((next < ${#queue[@]})); then
      name=${queue[next]}; next=$((next + 1))
      mkdir -p "$out/$name"
      run_one "$name" "$g" > "$out/$name/run.log" 2>&1 &
      slot_pid[g]=$!; slot_name[g]=$name
      echo "$(date -u +%T) start $name on GPU $g"
    fi
  done
  busy=0
  for ((g = 0; g < gpus; g++)); do [[ -n ${slot_pid[g]:-} ]] && busy=1; done
  ((busy == 0 && next >= ${#queue[@]})) && break
  sleep 5
done
exit $failed

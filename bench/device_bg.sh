#!/usr/bin/env bash
# A device job longer than one call (a call may run 600 s; the issues' training runs take 10 minutes plus their
# evaluations): `start` launches the job in its own session so it outlives the call, on the machine that stays
# held while the next call comes at once; `wait` in the next call waits for it and copies what it wrote.
#   bash bench/device_bg.sh start 'OUT=/tmp/bg/out SECS=600 bash bench/device_families.sh'
#   bash bench/device_bg.sh wait 590         (next call: waits up to 590 s; /tmp/bg/out as $OUT/bg_out.tar)
#   bash bench/device_bg.sh status           (is it running, and the log's tail)
# The job writes its results under /tmp/bg/out (the OUT of the call that started it is gone once that call ends);
# a queue of runs gives each its own folder there: start 'OUT=/tmp/bg/out/a ...; OUT=/tmp/bg/out/b ...'.
set -uo pipefail
bg=/tmp/bg
# running, and not a zombie left for a parent that never reaps it
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' /proc/$1/stat 2> /dev/null) != Z ]]; }
case "${1:-}" in
  start)
    [[ -n "${2:-}" ]] || { echo "usage: $0 start 'COMMAND'" >&2; exit 2; }
    if [[ -f $bg/pid ]] && alive "$(cat $bg/pid)"; then
      echo "a job is running already (pid $(cat $bg/pid))" >&2; exit 1
    fi
    rm -rf $bg && mkdir -p $bg/out
    # setsid: its own session and process group, so the end of this call does not take it down. The job writes
    # its own pid (setsid may fork, and then $! is not the job).
    setsid nohup bash -c "echo \$\$ > $bg/pid; ( $2 ); echo \$? > $bg/rc" > $bg/log 2>&1 < /dev/null &
    for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -s $bg/pid ]] && break; sleep 0.2; done
    echo "started pid $(cat $bg/pid 2> /dev/null) at $(date -u +%T): $2"
    ;;
  wait)
    limit="${2:-590}"
    [[ -f $bg/pid ]] || { echo "no job was started on this machine (a fresh machine?)" >&2; exit 1; }
    state=running
    for ((s = 0; s < limit; s += 5)); do
      [[ -f $bg/rc ]] && { state=done; break; }
      alive "$(cat $bg/pid)" || { state=killed; break; }
      sleep 5
    done
    [[ -f $bg/rc ]] && state=done
    tail -30 $bg/log
    case $state in
      running) echo "still running after ${limit} s: wait again" ;;
      done) echo "job exit status $(cat $bg/rc)" ;;
      *) echo "the job was killed (no exit status)" ;;
    esac
    # What the job has written so far comes back at every wait, finished or not, so a lease cut short still
    # returns the runs of a queue that ended; one tarball, as a call returns at most 8 files.
    mkdir -p "${OUT:-/tmp/bytelm_out}"
    tar -C $bg/out -cf "${OUT:-/tmp/bytelm_out}/bg_out.tar" . && cp $bg/log "${OUT:-/tmp/bytelm_out}/bg.log"
    ;;
  status)
    [[ -f $bg/pid ]] || { echo "no job"; exit 0; }
    alive "$(cat $bg/pid)" && echo "running" || echo "finished: exit status $(cat $bg/rc 2> /dev/null)"
    tail -5 $bg/log
    ;;
  *)
    sed -n 2,8p "$0"; exit 2
    ;;
esac

#!/usr/bin/env bash
# A lease call's whole command: `bash benchmarks/lease/job.sh stage` in the staging calls,
# `bash benchmarks/lease/job.sh run [job options]` in the last (docs/device.md: which paths
# each call carries). Everything outside the tree lives under $LEASE_ROOT, which outlives
# the call while the machine stays warm; the log goes to $OUT/job.log and comes back.
set -uo pipefail
export LEASE_CALL_STARTED=${LEASE_CALL_STARTED:-$(date +%s)}
mode=${1:-}
shift || true
export LEASE_ROOT=${LEASE_ROOT:-/root/lease}
export OUT=${OUT:-$LEASE_ROOT/out}
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 SIGNED_SALIENCY_CACHE=$LEASE_ROOT/cache SIGNED_SALIENCY_DATA=$LEASE_ROOT/data
export TQDM_MININTERVAL=${TQDM_MININTERVAL:-30}  # a bar's line every 30 s, not a flood in the log
export PIP_ROOT_USER_ACTION=ignore
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
mkdir -p "$LEASE_ROOT" "$OUT"

main() {
  echo "[$(date -u +%T)] job.sh $mode: $(getconf _NPROCESSORS_ONLN) cores, $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no GPU')"
  # the wheels the machine lacks (captum), once per machine
  if compgen -G ".whl/*.whl" >/dev/null && [ ! -e "$LEASE_ROOT/site/.installed" ]; then
    $PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$LEASE_ROOT/site" .whl/*.whl && touch "$LEASE_ROOT/site/.installed" || return 3
  fi
  if [ -d "$LEASE_ROOT/site" ]; then export PYTHONPATH=$PYTHONPATH:$LEASE_ROOT/site; fi
  $PYTHON -m benchmarks.lease.stage receive || return $?
  case $mode in
    stage) ;;
    run)
      $PYTHON -m benchmarks.lease.stage assemble || return $?
      $PYTHON -m benchmarks.lease.stage unbundle || return $?
      $PYTHON -m benchmarks.lease.job "$@" ;;
    *) echo "usage: bash benchmarks/lease/job.sh stage | run [python -m benchmarks.lease.job options]"; return 2 ;;
  esac
}

main "$@" 2>&1 | tee -a "$OUT/job.log"
exit "${PIPESTATUS[0]}"

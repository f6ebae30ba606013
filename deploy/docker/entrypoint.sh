#!/bin/sh
# The image's entrypoint: `orderhub <args>`.
#
# `orderhub up` with ORDERHUB_RAY_ADDRESS set joins a Ray cluster, and a Ray driver needs a
# Ray node (a raylet) in its own container: without one, ray.init() waits and then fails.
# So the hub's container first joins the cluster as a node that offers nothing to schedule
# on (no CPUs, no GPUs, a small object store), retrying while the Ray head starts, then
# runs the hub in this process's place. Every other command (db upgrade, token, stock, ...)
# runs as it is.
#
# tini (PID 1) passes SIGTERM to the hub alone: the hub drains, settles and leaves Ray
# first; the node goes with the container.
set -eu

if [ "${1:-}" = "up" ] && [ -n "${ORDERHUB_RAY_ADDRESS:-}" ]; then
  tries=0
  until ray start \
    --address="${ORDERHUB_RAY_ADDRESS}" \
    --num-cpus=0 \
    --num-gpus=0 \
    --object-store-memory="${HUB_RAY_OBJECT_STORE_BYTES:-268435456}" \
    --disable-usage-stats; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
      echo "could not join the Ray cluster at ${ORDERHUB_RAY_ADDRESS}" >&2
      exit 1
    fi
    sleep 2
  done
fi
exec orderhub "$@"

#!/bin/sh
# Create OrderHub's JetStream streams with three replicas before the first hub starts.
#
# A hub that finds no stream for its subjects creates one itself, with one replica: on a
# cluster that would put the stream on a single server. A stream that exists is used as
# it is, so creating them here first (R3, file storage) is what makes them survive the
# loss of a NATS server. Safe to run again: existing streams are left alone.
# Runs in natsio/nats-box; NATS_URL names the cluster.
set -eu
dir="${STREAMS_DIR:-/streams}"
for file in "$dir"/*.json; do
  name=$(sed -n 's/^ *"name": *"\([^"]*\)".*/\1/p' "$file")
  if nats stream info "$name" >/dev/null 2>&1; then
    echo "stream $name exists; left as it is"
  else
    nats stream add "$name" --config "$file"
  fi
  # Fails (and so fails the job) unless the stream is really there.
  nats stream info "$name" >/dev/null
done
echo "streams ready"

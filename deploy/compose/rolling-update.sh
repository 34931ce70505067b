#!/bin/sh
# Replace the app replicas of a compose.scale.yaml deployment one at a time, without a failed
# request: start one replica from the current image, wait until it is healthy, then drain one
# old replica (`healthcare drain`: its /readyz answers 503, and HAProxy, which asks every
# second and takes a replica out after three failures, stops sending it requests), wait
# DRAIN_SECONDS, and stop it (SIGTERM: it finishes the requests it still holds). Stopping a
# replica still in rotation would reset connections it had accepted but not yet read.
#   deploy/compose/rolling-update.sh -f compose.yaml -f compose.scale.yaml [-p PROJECT ...]
# Build or pull the new image first. Every wait is bounded; a replica that does not become
# healthy stops the update with the old replicas still serving.
set -eu

HEALTHY_WITHIN=${HEALTHY_WITHIN:-180}
DRAIN_SECONDS=${DRAIN_SECONDS:-6}

healthy() {
  [ "$(docker inspect -f '{{.State.Health.Status}}' "$1" 2>/dev/null)" = healthy ]
}

old=$(docker compose "$@" ps -q app)
count=$(echo "$old" | wc -w)
[ "$count" -gt 0 ] || { echo "no app replicas to replace" >&2; exit 1; }
for replica in $old; do
  docker compose "$@" up -d --no-deps --no-recreate --scale app=$((count + 1)) app
  waited=0
  for new in $(docker compose "$@" ps -q app); do
    case " $old " in *" $new "*) continue ;; esac
    until healthy "$new"; do
      if [ "$waited" -ge "$HEALTHY_WITHIN" ]; then
        echo "replica $new not healthy after ${HEALTHY_WITHIN}s: update stopped" >&2
        exit 1
      fi
      sleep 1
      waited=$((waited + 1))
    done
  done
  docker exec "$replica" healthcare drain >/dev/null
  sleep "$DRAIN_SECONDS"
  docker stop --time 30 "$replica" >/dev/null
  docker rm "$replica" >/dev/null
  echo "replaced $replica"
done

#!/bin/sh
# The colony container's entry: creates the colony on the /data volume on first
# start (coral init, from CORAL_APP_NAME / CORAL_ENVIRONMENT / CORAL_DISCOVERY_URL),
# then runs it in the foreground. Extra arguments go to `coral colony start`.
set -eu

# Docker/Kubernetes secrets as files: FOO_FILE=/run/secrets/foo sets FOO.
# CORAL_ENROLL_SECRET is the standing invitation agents enroll with;
# CORAL_COLONY_SECRET(_FILE), its old name, still works (the colony warns).
for name in CORAL_ENROLL_SECRET CORAL_COLONY_SECRET ANTHROPIC_API_KEY CORAL_TOKEN; do
  eval "file=\${${name}_FILE:-}"
  if [ -n "$file" ]; then
    [ -r "$file" ] || { echo "entrypoint: ${name}_FILE=$file is not readable" >&2; exit 1; }
    value="$(cat "$file")"
    [ -n "$value" ] || { echo "entrypoint: ${name}_FILE=$file is empty" >&2; exit 1; }
    export "$name=$value"
    unset "${name}_FILE"
  fi
done

cd /srv/coral
if [ ! -w /data ]; then
  echo "entrypoint: /data is not writable by uid $(id -u); chown the volume to 10001 (Kubernetes: securityContext.fsGroup: 10001)" >&2
  exit 1
fi
if [ ! -f .coral/config.yaml ]; then
  if [ -n "${CORAL_DISCOVERY_URL:-}" ]; then
    coral init --app "${CORAL_APP_NAME}" --env "${CORAL_ENVIRONMENT}" --yes --discovery "$CORAL_DISCOVERY_URL"
  else
    coral init --app "${CORAL_APP_NAME}" --env "${CORAL_ENVIRONMENT}" --yes
  fi
fi
# The only colony in this container: a pid file left by a killed run is stale.
rm -f .coral/colony.pid
exec coral colony start --log-format "${CORAL_LOG_FORMAT:-json}" --log-level "${CORAL_LOG_LEVEL:-info}" "$@"

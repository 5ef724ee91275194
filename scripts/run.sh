#!/usr/bin/env bash
# Starts the whole stack for local use: web, forwarder (upstream calls), maintenance (django-q2: reaper, webhooks,
# billing checks, statements), all under honcho; plus the local
# AIHubMix sandbox, with web and worker pointed at it, unless AIHUBMIX_API_KEY is set (environment or .env).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
# HOST, PORT, PUBLIC_BASE_URL, the sandbox (or not), PROCESSES and UPSTREAM
source scripts/run-env.sh

# Every process of this host counts into one directory; /metrics adds them up (project/metrics.py). Stale files
# of an earlier run would count twice.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-var/metrics}
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

KEY=$($BIN/python manage.py bootstrap_demo | tail -n 1)
cat <<MSG

  Demo tenant 'demo' is ready. Its admin API key (kept in var/demo-api-key):

    $KEY

  Try it:

    curl -H "Authorization: Bearer $KEY" http://$HOST:$PORT/v1/api-keys

    curl -H "Authorization: Bearer $KEY" -H "Prefer: wait=30" -H "Content-Type: application/json" \
      -d '{"model": "gpt-image-2", "prompt": "a lighthouse at dawn", "quality": "low", "size": "1024x1024"}' \
      http://$HOST:$PORT/v1/generations

  API docs: http://$HOST:$PORT/v1/docs/   Health: http://$HOST:$PORT/healthz   Admin: http://$HOST:$PORT/admin/
  (create a staff login with: $BIN/python manage.py createsuperuser)

  Upstream: $UPSTREAM

MSG
exec $BIN/honcho start -f Procfile "${PROCESSES[@]}"

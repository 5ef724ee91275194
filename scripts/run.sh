#!/usr/bin/env bash
# Starts the whole stack for local use: web, forwarder (upstream calls), maintenance (django-q2: reaper, webhooks,
# billing checks, statements), all under honcho; plus the local
# AIHubMix sandbox, with web and worker pointed at it, unless AIHUBMIX_API_KEY is set (environment or .env).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export HOST PORT

# Every process of this host counts into one directory; /metrics adds them up (project/metrics.py). Stale files
# of an earlier run would count twice.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-var/metrics}
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

PROCESSES=(web forwarder maintenance)
UPSTREAM="AIHubMix at ${AIHUBMIX_BASE_URL:-https://aihubmix.com/v1}"
if [[ -z "${AIHUBMIX_API_KEY:-}" ]] && ! grep -qs '^AIHUBMIX_API_KEY=..*' .env; then
  SANDBOX_PORT=${SANDBOX_PORT:-9100}
  export SANDBOX_PORT
  export AIHUBMIX_API_KEY=sk-local-sandbox
  export AIHUBMIX_BASE_URL=http://127.0.0.1:$SANDBOX_PORT/v1
  export AIHUBMIX_TASKS_URL=http://127.0.0.1:$SANDBOX_PORT/v1/tasks
  # The sandbox serves its image URLs on loopback, which output fetching refuses by default.
  export OUTPUT_FETCH_ALLOW_PRIVATE=true
  PROCESSES+=(sandbox)
  UPSTREAM="the local AIHubMix sandbox at $AIHUBMIX_BASE_URL (no AIHUBMIX_API_KEY set; see README)"
fi

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

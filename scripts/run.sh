#!/usr/bin/env bash
# Starts the whole stack for local use: web (gunicorn), worker (django-q2), all under honcho.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export HOST PORT

KEY=$($BIN/python manage.py bootstrap_demo | tail -n 1)
cat <<MSG

  Demo tenant 'demo' is ready. Its admin API key (kept in var/demo-api-key):

    $KEY

  Try it:

    curl -H "Authorization: Bearer $KEY" http://$HOST:$PORT/v1/api-keys

  API docs: http://$HOST:$PORT/v1/docs/   Health: http://$HOST:$PORT/healthz   Admin: http://$HOST:$PORT/admin/
  (create a staff login with: $BIN/python manage.py createsuperuser)

MSG
exec $BIN/honcho start -f Procfile

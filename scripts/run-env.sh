# The environment `make run` (scripts/run.sh) starts the stack with, in a file of its own so that tests can source
# it and check what each process gets without starting anything. Sourced from the repository root (.env is there).
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
export HOST PORT

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

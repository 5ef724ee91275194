# The environment `make run` (scripts/run.sh) starts the stack with, in a file of its own so that tests can source
# it and check what each process gets without starting anything. Sourced from the repository root (.env is there).

dotenv_value() {  # dotenv_value NAME: NAME's last value in .env (quotes removed), or nothing
  [[ -f .env ]] || return 0
  local value
  value=$(sed -n "s/^$1=//p" .env | tail -n 1)
  value=${value%\"}; value=${value#\"}; value=${value%\'}; value=${value#\'}
  printf '%s' "$value"
}

# honcho gives every process .env's values over the shell's (and then its own PORT: web PORT, forwarder PORT + 100,
# maintenance PORT + 200), so the web process listens on .env's HOST and PORT when they are set there.
dotenv_host=$(dotenv_value HOST)
dotenv_port=$(dotenv_value PORT)
HOST=${dotenv_host:-${HOST:-127.0.0.1}}
PORT=${dotenv_port:-${PORT:-8000}}
export HOST PORT

# Image links in webhook bodies start with PUBLIC_BASE_URL. They are rendered by the forwarder, whose own PORT is
# not the web's, so when it is not set (environment or .env) it is derived here from where the web listens (a
# wildcard address is reached on loopback from this machine).
if [[ -z "${PUBLIC_BASE_URL:-}" && -z "$(dotenv_value PUBLIC_BASE_URL)" ]]; then
  case $HOST in
    0.0.0.0 | :: | "[::]") public_host=127.0.0.1 ;;
    \[*) public_host=$HOST ;;
    *:*) public_host="[$HOST]" ;;  # an IPv6 address
    *) public_host=$HOST ;;
  esac
  export PUBLIC_BASE_URL="http://$public_host:$PORT"
fi

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

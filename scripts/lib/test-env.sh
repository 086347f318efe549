# Sourced by scripts/test and scripts/lambda-readiness (from the repository root, with `root`
# set): installs the pinned test tools into .venv, starts moto_server on a free loopback port
# (stopped when the calling script exits) and points the AWS SDK at it with test credentials.
# Pass "browser" to also install chromium for the dashboard test.

venv="${ATTIO_RELAY_VENV:-$root/.venv}"
requirements="$root/scripts/requirements-test.txt"

if [ ! -f "$venv/.installed" ] || ! cmp -s "$requirements" "$venv/.installed"; then
  echo "==> installing test tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$venv/.installed"
fi
export PATH="$venv/bin:$PATH"

if [ "${1:-}" = "browser" ] && { ! command -v chromedriver >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; }; then
  echo "==> installing chromium and chromium-driver (Debian packages) for the dashboard test"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

port=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log="${TMPDIR:-/tmp}/attio-relay-moto-$port.log"
echo "==> starting moto_server on 127.0.0.1:$port (log: $log)"
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')" 2>/dev/null; then
    break
  fi
  kill -0 "$moto_pid" 2>/dev/null || { cat "$log"; echo "moto_server exited" >&2; exit 1; }
  sleep 0.2
done

export MOTO_ENDPOINT="http://127.0.0.1:$port"
# The AWS SDK must never find real credentials or endpoints in tests.
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE


#!/usr/bin/env bash
# Regenerates events/signatures/vectors.json (and events/lambda/ingest-function-url.json)
# with openssl alone, independently of the project's Rust code.
#
#   bash events/signatures/generate.sh      # from the repository root, or from anywhere
#
# Body-only scheme (Attio's documented one): lower-case hex HMAC-SHA256 of the raw body bytes.
# Timestamped scheme: the same HMAC over the bytes "{timestamp}.{raw body}".
# The body is always the delivery file's bytes exactly as they are on disk (trailing newline
# included); nothing is re-serialised.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
events_dir="$(cd "$script_dir/.." && pwd)"
out="$script_dir/vectors.json"

command -v openssl >/dev/null || { echo "generate.sh: openssl not found" >&2; exit 1; }

CURRENT="whsec_fixture_current"
PREVIOUS="whsec_fixture_previous"

check_hex() {
  [[ "$1" =~ ^[0-9a-f]{64}$ ]] || { echo "generate.sh: unexpected openssl output: '$1'" >&2; exit 1; }
}

# sign_body SECRET FILE -> hex HMAC-SHA256 of the file's bytes
sign_body() {
  local secret="$1" file="$2" sig
  sig="$(openssl dgst -sha256 -hmac "$secret" -r < "$file" | cut -d' ' -f1)"
  check_hex "$sig"
  printf '%s' "$sig"
}

# sign_timestamped SECRET TIMESTAMP FILE -> hex HMAC-SHA256 of "{timestamp}." followed by the file's bytes
sign_timestamped() {
  local secret="$1" ts="$2" file="$3" sig
  sig="$(printf '%s.' "$ts" | cat - "$file" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
  check_hex "$sig"
  printf '%s' "$sig"
}

entries=()

# add NAME SECRET BODY_FILE TIMESTAMP|null
add() {
  local name="$1" secret="$2" body_file="$3" ts="$4" path sig
  path="$events_dir/$body_file"
  [[ -f "$path" ]] || { echo "generate.sh: missing $path" >&2; exit 1; }
  if [[ "$ts" == null ]]; then
    sig="$(sign_body "$secret" "$path")"
  else
    sig="$(sign_timestamped "$secret" "$ts" "$path")"
  fi
  entries+=("$(printf '  {\n    "name": "%s",\n    "secret": "%s",\n    "body_file": "%s",\n    "timestamp": %s,\n    "signature": "%s"\n  }' \
    "$name" "$secret" "$body_file" "$ts" "$sig")")
}

add "body-only record-updated"        "$CURRENT"  "deliveries/record-updated.json"       null
add "body-only batch-mixed"           "$CURRENT"  "deliveries/batch-mixed.json"          null
add "body-only unknown-future-event"  "$CURRENT"  "deliveries/unknown-future-event.json" null
add "body-only rotation previous secret record-updated" "$PREVIOUS" "deliveries/record-updated.json" null
add "timestamped record-updated"      "$CURRENT"  "deliveries/record-updated.json"       1763000000
add "timestamped note-created"        "$CURRENT"  "deliveries/note-created.json"         1763000123

{
  printf '[\n'
  for i in "${!entries[@]}"; do
    if (( i + 1 < ${#entries[@]} )); then printf '%s,\n' "${entries[$i]}"; else printf '%s\n' "${entries[$i]}"; fi
  done
  printf ']\n'
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out (${#entries[@]} vectors)"

# Keep the Lambda Function URL sample signed over the current delivery bytes.
bash "$events_dir/lambda/generate.sh"

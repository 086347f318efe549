#!/usr/bin/env bash
# Regenerates events/signatures/hubspot-vectors.json with openssl alone, independently of the
# project's Rust code.
#
#   bash events/signatures/generate-hubspot.sh
#
# HubSpot's v3 request signature: base64 HMAC-SHA256, keyed with the app's client secret, of
# method + URI + body + X-HubSpot-Request-Timestamp (unix milliseconds), no separators, the URI
# with the docs' listed %-encodings decoded (%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C %3B).
# https://developers.hubspot.com/docs/apps/legacy-apps/authentication/validating-requests#validate-the-v3-request-signature
# The body is the file's bytes exactly as on disk (trailing newline included).
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
events_dir="$(cd "$script_dir/.." && pwd)"
out="$script_dir/hubspot-vectors.json"

command -v openssl >/dev/null || { echo "generate-hubspot.sh: openssl not found" >&2; exit 1; }

CURRENT="hs-app-secret-current-0000-000000000000"
PREVIOUS="hs-app-secret-previous-000-000000000000"

entries=()

# add NAME SECRET METHOD SENT_URI SIGNED_URI BODY_FILE TIMESTAMP_MS
# SENT_URI is what the request line carries; SIGNED_URI is it decoded as the docs say (written
# out by hand here, so the Rust decoder is checked against it, not used to make it).
add() {
  local name="$1" secret="$2" method="$3" sent="$4" signed="$5" body_file="$6" ts="$7" path sig
  path="$events_dir/$body_file"
  [[ -f "$path" ]] || { echo "generate-hubspot.sh: missing $path" >&2; exit 1; }
  sig="$( { printf '%s%s' "$method" "$signed"; cat "$path"; printf '%s' "$ts"; } \
    | openssl dgst -sha256 -hmac "$secret" -binary | openssl base64 -A)"
  [[ "$sig" =~ ^[A-Za-z0-9+/]{43}=$ ]] || { echo "generate-hubspot.sh: unexpected openssl output: '$sig'" >&2; exit 1; }
  entries+=("$(printf '  {\n    "name": "%s",\n    "secret": "%s",\n    "method": "%s",\n    "uri": "%s",\n    "body_file": "%s",\n    "timestamp_ms": %s,\n    "signature": "%s"\n  }' \
    "$name" "$secret" "$method" "$sent" "$body_file" "$ts" "$sig")")
}

add "contact changes" "$CURRENT" POST \
  "https://abc123.lambda-url.eu-west-1.on.aws/hubspot/webhooks" \
  "https://abc123.lambda-url.eu-west-1.on.aws/hubspot/webhooks" \
  "hubspot/contact-changes.json" 1763000005000
add "merge and association, query string" "$CURRENT" POST \
  "https://relay.example.com/hubspot/webhooks?stage=prod&x=1" \
  "https://relay.example.com/hubspot/webhooks?stage=prod&x=1" \
  "hubspot/contact-merge-association.json" 1763000009000
add "rotation: previous secret" "$PREVIOUS" POST \
  "https://relay.example.com/hubspot/webhooks" \
  "https://relay.example.com/hubspot/webhooks" \
  "hubspot/contact-changes.json" 1763000005000
add "encoded URI characters decoded before signing" "$CURRENT" POST \
  "https://relay.example.com/hubspot/webhooks?source=hs%3Aapp%2Fv3&tag=%28a%29%2C%40b%20c" \
  "https://relay.example.com/hubspot/webhooks?source=hs:app/v3&tag=(a),@b%20c" \
  "hubspot/contact-changes.json" 1763000005000

{
  printf '[\n'
  for i in "${!entries[@]}"; do
    if (( i + 1 < ${#entries[@]} )); then printf '%s,\n' "${entries[$i]}"; else printf '%s\n' "${entries[$i]}"; fi
  done
  printf ']\n'
} > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out (${#entries[@]} vectors)"

#!/usr/bin/env bash
# Regenerates events/lambda/ingest-function-url.json: a Lambda Function URL invocation event
# (API Gateway HTTP API payload format 2.0) whose body is the exact bytes of
# events/deliveries/record-updated.json, signed body-only with "whsec_fixture_current".
# The HMAC comes from openssl; python3 only assembles the JSON.
#
#   bash events/lambda/generate.sh          # from anywhere; also run by events/signatures/generate.sh
#   cargo lambda invoke ingest --data-file events/lambda/ingest-function-url.json
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
events_dir="$(cd "$script_dir/.." && pwd)"
body_file="$events_dir/deliveries/record-updated.json"
out="$script_dir/ingest-function-url.json"
secret="whsec_fixture_current"

sig="$(openssl dgst -sha256 -hmac "$secret" -r < "$body_file" | cut -d' ' -f1)"
[[ "$sig" =~ ^[0-9a-f]{64}$ ]] || { echo "lambda/generate.sh: unexpected openssl output: '$sig'" >&2; exit 1; }

python3 - "$body_file" "$sig" "$out" <<'PY'
import json, sys

body_file, sig, out = sys.argv[1:4]
with open(body_file, "rb") as f:
    raw = f.read()
body = raw.decode("utf-8")  # the exact bytes, carried as a JSON string (not base64)

url_id = "q7x3k2m9vd4hpl6cn5wtr8yzbe1fsaoj"
time_epoch_ms = 1763000000000  # 2025-11-13T02:13:20Z

event = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/",
    "rawQueryString": "",
    "headers": {
        "content-type": "application/json",
        "content-length": str(len(raw)),
        "attio-signature": sig,
        "x-attio-signature": sig,
        "idempotency-key": "6ba3bb52-51fe-41eb-bc78-8f35af7790b8",
        "user-agent": "Attio-Webhooks/1.0",
        "accept-encoding": "gzip, deflate",
        "host": f"{url_id}.lambda-url.eu-west-1.on.aws",
        "x-amzn-tls-version": "TLSv1.3",
        "x-amzn-tls-cipher-suite": "TLS_AES_128_GCM_SHA256",
        "x-amzn-trace-id": "Root=1-6915402f-1f63871b84fc4ef98645d091",
        "x-forwarded-for": "35.187.112.40",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    },
    "requestContext": {
        "accountId": "anonymous",
        "apiId": url_id,
        "domainName": f"{url_id}.lambda-url.eu-west-1.on.aws",
        "domainPrefix": url_id,
        "http": {
            "method": "POST",
            "path": "/",
            "protocol": "HTTP/1.1",
            "sourceIp": "35.187.112.40",
            "userAgent": "Attio-Webhooks/1.0",
        },
        "requestId": "7bf83100-8e8d-4820-8c38-5e087c10dc5c",
        "routeKey": "$default",
        "stage": "$default",
        "time": "13/Nov/2025:02:13:20 +0000",
        "timeEpoch": time_epoch_ms,
    },
    "body": body,
    "isBase64Encoded": False,
}

with open(out, "w", encoding="utf-8", newline="\n") as f:
    f.write(json.dumps(event, indent=2, ensure_ascii=False) + "\n")
print(f"wrote {out}")
PY

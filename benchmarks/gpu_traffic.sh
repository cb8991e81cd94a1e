#!/usr/bin/env bash
# The traffic benchmark (benchmarks/traffic.py) on one CUDA GPU: real multilingual reviews over
# HTTP against `adapterhub serve`, 1 / 64 / 1024 distinct LoRA adapters, in fp16, bf16 and
# bitsandbytes 8-bit, each against the bare backbone in fp32 and in the same precision, sorted
# and in arrival order, measured in the same run. Never part of CI.
#
#   bash benchmarks/gpu_traffic.sh            # all three precisions, ~10-20 min on one GPU
#   PRECISIONS="bf16" PER_LANG=32 bash benchmarks/gpu_traffic.sh
#
# It makes its own environment (.venv-gpu, beside the project's CPU one) with a CUDA build of
# torch from PyPI and the project installed editable; the built-in data and the embedded
# backbone are provisioned on first use (ADAPTERHUB_HOME, default ~/.adapterhub). Results:
# benchmarks/results/gpu/traffic-<precision>.json, plus gpu.txt (nvidia-smi) and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."

PRECISIONS=${PRECISIONS:-"fp16 bf16 8bit"}
PER_LANG=${PER_LANG:-64}          # test reviews per language (5 languages)
ADAPTERS=${ADAPTERS:-1,64,1024}
CONCURRENCY=${CONCURRENCY:-256}   # closed-loop clients; a GPU needs more in flight than a CPU
SECONDS_PER_POINT=${SECONDS_PER_POINT:-20}
OUT=${OUT:-benchmarks/results/gpu}
VENV=${VENV:-.venv-gpu}
TORCH=${TORCH:-torch==2.13.0}

if ! command -v nvidia-smi >/dev/null; then
  echo "no nvidia-smi: this script needs a CUDA GPU" >&2
  exit 2
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv | tee "$OUT/gpu.txt"

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  # no find-links: a machine with a local CPU wheel of the same version must not pick it
  PIP_FIND_LINKS= "$VENV/bin/pip" install --no-input --quiet "$TORCH"
  "$VENV/bin/pip" install --no-input --quiet -e . bitsandbytes
fi
PY="$VENV/bin/python"
"$PY" - <<'EOF'
import torch
assert torch.cuda.is_available() and torch.version.cuda, (
    f"torch {torch.__version__} has no CUDA here; rebuild the env: rm -r .venv-gpu"
)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
EOF
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1} TOKENIZERS_PARALLELISM=false
"$PY" -m adapterhub backbone fetch >/dev/null   # provision once, outside the timed runs

for precision in $PRECISIONS; do
  case "$precision" in
    8bit) flags=(--quantize 8bit) ;;
    fp16 | bf16) flags=(--dtype "$precision") ;;
    *) echo "unknown precision $precision (fp16, bf16, 8bit)" >&2; exit 2 ;;
  esac
  echo "== $precision ==" >&2
  # the GPU takes large batches: a bigger token budget per forward and a longer batching window
  "$PY" benchmarks/traffic.py --device cuda "${flags[@]}" \
    --per-lang "$PER_LANG" --adapters "$ADAPTERS" --concurrency "$CONCURRENCY" \
    --seconds "$SECONDS_PER_POINT" --rates 0.25,0.5,0.75 --threads 4 \
    --server-arg=--max-batch-tokens=65536 --server-arg=--max-wait-ms=10 \
    --server-arg=--max-queue=8192 --server-arg=--max-queue-tokens=1048576 \
    --out "$OUT/traffic-$precision.json" | tee "$OUT/traffic-$precision.log"
done

"$PY" - "$OUT" <<'EOF'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
lines = ["| precision | configuration | sentences/s | x sorted fp32 bare | p50 s | p99 s |",
         "|---|---|---:|---:|---:|---:|"]
for path in sorted(out.glob("traffic-*.json")):
    result = json.loads(path.read_text())
    limit = next(r["sentences_per_s"] for r in result["table"] if "length-sorted (the" in r["configuration"])
    for row in result["table"]:
        lines.append(f"| {path.stem[8:]} | {row['configuration']} | {row['sentences_per_s']:.1f} | "
                     f"{row['sentences_per_s'] / limit:.2f} | {row['p50_s']} | {row['p99_s']} |")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
EOF

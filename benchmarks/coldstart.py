"""Cold start: from ``adapterhub serve --preload sentiment/de`` to the first correct answer over
HTTP, against a minimal plain script (transformers + PEFT on the same registry entry, one
forward), each in a fresh process, alternating, ``--rounds`` times; plus the phases of the
server's start as its own log records them.

    OMP_NUM_THREADS=1 python benchmarks/coldstart.py [--rounds 3] [--out benchmarks/results/coldstart.json]

"Correct" = the label the entry gives the probe sentence on the fp32 path (positive, for a
clearly positive German review), the same in both. The server's phases come from its
``--debug`` log lines ``start: <phase> <seconds>`` (:mod:`adapterhub.cli.serve`). Times include
interpreter start; files are in the page cache after the first round (each configuration
is run once first, untimed). Goal: server <= 0.5x the plain script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from realtexts import machine  # noqa: E402

ADAPTER = "sentiment/de"
PROBE = "Das ist ein wunderbares Buch, ich habe es sehr gern gelesen."
EXPECTED = "positive"

PLAIN = r"""
import json, sys, time
started = float(sys.argv[3])
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModel, PreTrainedTokenizerFast
backbone, entry = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(backbone, add_pooling_layer=False).eval()
model = PeftModel.from_pretrained(model, entry).eval()
tokenizer = PreTrainedTokenizerFast(tokenizer_file=backbone + "/tokenizer.json")
head = load_file(entry + "/head.safetensors")
labels = json.load(open(entry + "/manifest.json"))["labels"]
manifest = json.load(open(entry + "/manifest.json"))
prefix = (manifest.get("preprocessing") or manifest.get("recipe") or {}).get("prefix", "")
batch = tokenizer([prefix + sys.argv[4]], return_tensors="pt")
with torch.inference_mode():
    hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    logits = pooled @ head["weight"].T + head["bias"]
print(json.dumps({"label": labels[int(logits.argmax())], "cpu_s": time.process_time()}))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_plain(backbone: Path, entry: Path, script: Path, env: dict) -> dict:
    started = time.time()
    out = subprocess.run(
        [sys.executable, str(script), str(backbone), str(entry), repr(started), PROBE],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": time.time() - started, "label": answer["label"], "cpu_s": answer["cpu_s"]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_server(env: dict, extra: list[str], source: Path | None) -> dict:
    import httpx

    port = free_port()
    command = [sys.executable, "-m", "adapterhub", "--debug", "serve", "--preload", ADAPTER]
    command += ["--port", str(port), *extra]
    started = time.time()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=source,  # python -m finds the adapterhub of that tree first
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/v1/predict"
    label, cpu = None, float("nan")
    try:
        with httpx.Client(timeout=60) as client:
            while time.time() - started < 300:
                if process.poll() is not None:
                    raise RuntimeError(process.stdout.read()[-2000:])
                try:
                    response = client.post(url, json={"adapter": ADAPTER, "inputs": [PROBE]})
                except httpx.TransportError:
                    time.sleep(0.01)
                    continue
                if response.status_code == 200:
                    label = response.json()["predictions"][0]["label"]
                    cpu = cpu_seconds(process.pid)
                    break
                time.sleep(0.01)
        seconds = time.time() - started
    finally:
        process.terminate()
        log = process.communicate(timeout=60)[0]
    phases = {
        m.group(1): float(m.group(2)) for m in re.finditer(r"start: ([a-z_ ]+?) ([0-9.]+) s", log)
    }
    return {"seconds": seconds, "label": label, "cpu_s": cpu, "phases": phases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-arg", action="append", default=[], help="extra serve flag")
    parser.add_argument("--tag", default="", help="a name for this run in the JSON")
    parser.add_argument(
        "--source", type=Path, default=None, help="serve from this checkout (before/after)"
    )
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "coldstart.json"))
    args = parser.parse_args(argv)
    from adapterhub.backbone import resolve_path
    from adapterhub.registry.resolver import Resolver

    backbone = resolve_path("multilingual-e5-small")[1]
    entry = Resolver.default(None).resolve(ADAPTER).path
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": os.environ.get(
        "OMP_NUM_THREADS", "1")}  # fmt: skip
    results: dict = {"machine_at_start": machine(), "entry": str(entry), "probe": PROBE}
    with tempfile.TemporaryDirectory() as work:
        script = Path(work) / "plain.py"
        script.write_text(PLAIN)
        print("warm-up (page cache) ...", flush=True)
        run_plain(backbone, entry, script, env)
        run_server(env, args.server_arg, args.source)
        plain, server = [], []
        for index in range(args.rounds):
            server.append(run_server(env, args.server_arg, args.source))
            plain.append(run_plain(backbone, entry, script, env))
            print(
                f"  round {index + 1}: server {server[-1]['seconds']:.2f} s "
                f"({server[-1]['label']}), plain {plain[-1]['seconds']:.2f} s "
                f"({plain[-1]['label']})",
                flush=True,
            )
    ratios = [s["seconds"] / p["seconds"] for s, p in zip(server, plain)]
    phases = {
        name: statistics.median(run["phases"].get(name, 0.0) for run in server)
        for name in server[0]["phases"]
    }
    results.update(
        {
            "server_s": [r["seconds"] for r in server],
            "plain_s": [r["seconds"] for r in plain],
            "server_cpu_s": [r["cpu_s"] for r in server],
            "plain_cpu_s": [r["cpu_s"] for r in plain],
            "cpu_ratio_median": statistics.median(
                s["cpu_s"] / p["cpu_s"] for s, p in zip(server, plain)
            ),
            "source": str(args.source or Path(__file__).resolve().parents[1]),
            "server_median_s": statistics.median(r["seconds"] for r in server),
            "plain_median_s": statistics.median(r["seconds"] for r in plain),
            "ratio_paired_median": statistics.median(ratios),
            "server_phases_median_s": phases,
            "labels": sorted({r["label"] for r in server + plain}),
            "correct": all(r["label"] == EXPECTED for r in server + plain),
            "server_flags": args.server_arg,
            "machine_at_end": machine(),
        }
    )
    print(
        f"\nserver {results['server_median_s']:.2f} s vs plain {results['plain_median_s']:.2f} s: "
        f"{results['ratio_paired_median']:.2f}x (goal <= 0.5x: "
        f"{'met' if results['ratio_paired_median'] <= 0.5 else 'missed'}); answers correct: "
        f"{results['correct']}"
    )
    print(f"CPU seconds to the answer: ratio {results['cpu_ratio_median']:.2f}x")
    print("server phases (median s): " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous[args.tag or "latest"] = results
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"wrote {out} [{args.tag or 'latest'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())

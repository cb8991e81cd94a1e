"""Peers side by side: adapterhub's runtime, PEFT mixed batches, AdapterHub's ``adapters``
(BatchSplit) and Infinity's ``/embed`` path, each in its own virtual environment, on the same
backbone folder and the same token ids of real reviews; one table of ratios against the bare
backbone, each measured in the same process as the peer (interleaved rounds).

    OMP_NUM_THREADS=1 python benchmarks/peers/run.py [--per-lang 16] [--counts 1,64]
        [--only peft,adapters,infinity] [--cache ~/.cache/adapterhub-peers]

Each peer's environment is created under ``--cache`` (``python -m venv``, then ``pip install``
of its pins; reused while the pins are the same), so their pins cannot clash with the
project's or each other's (``adapters`` needs transformers 4.57; the project runs 5.x). A peer
that does not install says so in the table with pip's error line. Batches: 32 texts, in arrival
order and sorted by length (each peer's best case); adapterhub also as its server runs them
(all texts in one call: sub-batches of similar length). Results: benchmarks/results/peers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from common import batches, padded, ratios, rounds  # noqa: E402
from realtexts import machine, review_texts  # noqa: E402
from serving import make_adapters  # noqa: E402

TORCH = "torch==2.13.0+cpu"  # the CPU wheel this machine's pip finds locally; no CUDA download
PEERS = {
    "peft": ("peft_mixed.py", [TORCH, "transformers==5.24.0", "peft==0.21.2"]),
    "adapters": ("adapters_lib.py", [TORCH, "adapters==1.3.0", "transformers==4.57.*"]),
    "infinity": ("infinity_embed.py", [TORCH, "infinity-emb[torch]==0.0.78"]),
}


def environment(cache: Path, name: str, packages: list[str]) -> tuple[Path | None, str]:
    """The peer's venv python (created and installed on first use), or None and pip's error."""
    folder = cache / name
    python = folder / "bin" / "python"
    marker = folder / "adapterhub-pins.json"
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == packages:
        return python, ""
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True)
    print(f"  installing {name}: {' '.join(packages)} ...", flush=True)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-input", "--quiet", *packages],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        return None, (errors or done.stderr.strip().splitlines() or ["pip failed"])[-1][:300]
    marker.write_text(json.dumps(packages))
    return python, ""


def adapterhub_runs(backbone, ids, counts, orders, rounds_count, work: Path) -> dict:
    """The runtime over the same batches (and as its server runs them), against the bare
    backbone, in this process."""
    from adapterhub.registry import publish
    from adapterhub.runtime import Runtime
    from adapterhub.runtime.runtime import Lease, Row
    from adapterhub.tasks.base import Encoded, pad_id

    folders = make_adapters(backbone, work / "ah-src", max(counts))
    names = [f"bench/a{i}@bench:1.0.0" for i in range(len(folders))]
    for folder, name in zip(folders, names):
        publish(folder, name, backbone=backbone, store=work / "ah-registry")
    runtime = Runtime(backbone, registry=work / "ah-registry")
    leases = [runtime.acquire(name) for name in names]
    pad = pad_id(backbone.tokenizer)
    model = backbone.model

    def bare(plan):
        def call():
            with torch.inference_mode():
                for x, mask in plan:
                    model(input_ids=x, attention_mask=mask)

        return call

    def served(groups):
        return lambda: [runtime.forward(rows) for rows in groups]

    configs, embed = {}, Lease((), runtime)
    for order in orders:
        plan = batches(ids, order)
        configs[f"bare {order}"] = bare([padded(b, pad) for b in plan])
        configs[f"embed {order}"] = served(
            [[Row(embed, Encoded(r), "embed") for r in b] for b in plan]
        )
        for count in counts:
            groups, position = [], 0
            for b in plan:
                groups.append(
                    [Row(leases[(position + i) % count], Encoded(r)) for i, r in enumerate(b)]
                )
                position += len(b)
            configs[f"{count} adapters {order}"] = served(groups)
    for count in counts:  # as the server runs a full queue: one call, sub-batches inside
        rows = [Row(leases[i % count], Encoded(r)) for i, r in enumerate(ids)]
        configs[f"{count} adapters one call"] = served([rows])
    times = rounds(configs, rounds_count)
    result = {}
    for order in orders:
        subset = {k: v for k, v in times.items() if k.endswith(order)}
        result.update(ratios(subset, len(ids), bare=f"bare {order}"))
    for count in counts:
        key = f"{count} adapters one call"
        result.update(ratios({"bare sorted": times["bare sorted"], key: times[key]}, len(ids),
                             bare="bare sorted"))  # fmt: skip
    for lease in leases:
        lease.release()
    import transformers

    return {
        "peer": "adapterhub runtime",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "runs": result,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-lang", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--counts", default="1,64")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default=",".join(PEERS))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "adapterhub-peers",
    )
    parser.add_argument("--out", default=str(HERE.parent / "results" / "peers.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from adapterhub.backbone import load_backbone
    from adapterhub.tasks.base import encode_text, pad_id

    started = time.perf_counter()
    counts = [int(c) for c in args.counts.split(",")]
    orders = ["arrival", "sorted"]
    items = review_texts(args.per_lang, args.seed)
    texts = [item["text"] for item in items]
    backbone = load_backbone("multilingual-e5-small", device="cpu")
    ids = [encode_text(backbone.tokenizer, t, 512).input_ids for t in texts]
    results: dict = {"machine_at_start": machine(), "texts": len(texts), "counts": counts,
                     "threads": args.threads, "peers": {}}  # fmt: skip
    print(f"machine: {results['machine_at_start']}; {len(texts)} texts", flush=True)
    with tempfile.TemporaryDirectory(prefix="adapterhub-peers-") as tmp:
        work = Path(tmp)
        adapter_folders = make_adapters(backbone, work / "peft-src", max(counts))
        job = {
            "backbone": str(backbone.path),
            "ids": ids,
            "texts": texts,
            "pad_id": pad_id(backbone.tokenizer),
            "counts": counts,
            "orders": orders,
            "rounds": args.rounds,
            "threads": args.threads,
            "adapters": [str(f) for f in adapter_folders],
        }
        print("adapterhub (this environment) ...", flush=True)
        results["peers"]["adapterhub"] = adapterhub_runs(
            backbone, ids, counts, orders, args.rounds, work
        )
        del backbone
        for name in args.only.split(","):
            script, packages = PEERS[name]
            print(f"{name} ...", flush=True)
            python, error = environment(args.cache, name, packages)
            if python is None:
                results["peers"][name] = {"packages": packages, "install_error": error}
                print(f"  cannot install: {error}", flush=True)
                continue
            job_file = work / f"{name}.json"
            job_file.write_text(json.dumps({**job, "out": str(work / f"{name}-out.json")}))
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1"}
            done = subprocess.run(
                [str(python), str(HERE / script), str(job_file)],
                cwd=HERE,
                env=env,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
                results["peers"][name] = {"packages": packages, "run_error": tail[0][:300]}
                print(f"  failed: {tail[0][:300]}", flush=True)
                continue
            results["peers"][name] = {
                "packages": packages,
                **json.loads((work / f"{name}-out.json").read_text()),
            }
    results["machine_at_end"] = machine()
    results["wall_s"] = time.perf_counter() - started
    table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out} ({results['wall_s'] / 60:.1f} min)")
    return 0


def table(results: dict) -> None:
    """One row per peer and configuration: x its own bare backbone, per adapter count."""
    counts = results["counts"]
    print("\n| peer | batches | " + " | ".join(f"{c} adapters" for c in counts) + " |")
    print("|---|---|" + "---:|" * len(counts))
    rows = []
    for name, peer in results["peers"].items():
        if "runs" not in peer:
            why = peer.get("install_error") or peer.get("run_error")
            rows.append((name, "-", [f"not run: {why}"] + [""] * (len(counts) - 1)))
            continue
        runs = peer["runs"]
        for order in ("arrival", "sorted", "one call"):
            cells = [runs.get(f"{c} adapters {order}", {}).get("x_bare") for c in counts]
            if any(cell is not None for cell in cells):
                rows.append((peer["peer"], order, [f"{c:.2f}" if c else "-" for c in cells]))
        for key, run in runs.items():
            if key.startswith(("embed", "infinity")):
                rows.append((peer["peer"], key, [f"{run['x_bare']:.2f} (embeddings)"]
                             + [""] * (len(counts) - 1)))  # fmt: skip
    results["table"] = [{"peer": r[0], "batches": r[1], "x_bare": r[2]} for r in rows]
    for peer, order, cells in rows:
        print(f"| {peer} | {order} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())

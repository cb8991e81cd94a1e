"""Web page timings on the project store: how long the server takes to answer each page.

    OMP_NUM_THREADS=1 python benchmarks/web.py [--repeats 25] [--out benchmarks/results/web.json]

Each page is requested from the real server (uvicorn on a loopback port) ``--repeats`` times
after one cold request; the table shows the cold time and the median and worst of the warm ones.
The registry pages (browser, filters, every built-in adapter's page) come from ``adapterhub hub
--from project``; the playground, the live view and ``/v1/stats`` from ``adapterhub serve`` on
the embedded backbone over an empty local store (so it offers the project's adapters). Times
include the loopback round trip (about a millisecond), not the browser's drawing.

Goal: every page under 300 ms (the median of the warm requests).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

GOAL_MS = 300.0


def cpu() -> dict:
    """The CPU's model name and flags as /proc/cpuinfo gives them, and the core count."""
    info = {"model": platform.processor() or platform.machine(), "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            info["model"] = value.strip()
        elif key.strip() == "flags":
            info["flags"] = value.split()
            break
    info["cores"] = os.cpu_count()
    return info


def time_page(client: httpx.Client, path: str, repeats: int) -> dict:
    def once() -> float:
        started = time.perf_counter()
        response = client.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}: {response.text[:300]}")
        return elapsed

    cold = once()
    warm = [once() for _ in range(repeats)]
    return {
        "cold_ms": round(cold, 2),
        "median_ms": round(statistics.median(warm), 2),
        "max_ms": round(max(warm), 2),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--backbone", default="multilingual-e5-small")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "web.json"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    home = Path(tempfile.mkdtemp(prefix="adapterhub-web-bench-"))
    os.environ.setdefault("ADAPTERHUB_HOME", str(home / "home"))

    from adapterhub.backbone import load_backbone
    from adapterhub.registry.resolver import Resolver
    from adapterhub.runtime import Runtime
    from adapterhub.server import ServerThread, create_app
    from adapterhub.server.web.hub import create_hub_app

    hub = Resolver.only("project")
    ids = [str(listed.manifest.id) for listed in hub.entries()]
    registry_pages = [
        "/",
        "/?task=sentiment&sort=accuracy",
        "/?metric=accuracy&min_value=0.8&hide_yanked=true",
        "/?q=german",
        *[f"/adapters/{adapter_id}" for adapter_id in ids],
    ]
    results: dict[str, dict] = {}
    with ServerThread(create_hub_app(hub)) as server, httpx.Client(base_url=server.url) as client:
        for path in registry_pages:
            results[path] = time_page(client, path, args.repeats)
            print(f"hub   {path:<60} {results[path]['median_ms']:8.1f} ms", flush=True)

    print(f"loading {args.backbone} for the serve pages ...", flush=True)
    runtime = Runtime(load_backbone(args.backbone, device="cpu"), registry=home / "empty")
    runtime.predict("sentiment/de", ["Das Buch ist wunderbar."])  # something for the live view
    serve_pages = ["/playground", "/live", "/v1/stats", "/"]
    served: dict[str, dict] = {}
    with ServerThread(create_app(runtime)) as server, httpx.Client(base_url=server.url) as client:
        for path in serve_pages:
            served[path] = time_page(client, path, args.repeats)
            print(f"serve {path:<60} {served[path]['median_ms']:8.1f} ms", flush=True)

    every = [*results.values(), *served.values()]
    worst = max(r["median_ms"] for r in every)
    report = {
        "goal_ms": GOAL_MS,
        "worst_median_ms": worst,
        "all_under_goal": worst < GOAL_MS,
        "hub_project_store": results,
        "serve_project_store": served,
        "machine": {
            "cpu": cpu(),
            "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_at_end": os.getloadavg()[0],
        },
    }
    print(f"\n{'page':<66} {'cold':>8} {'median':>8} {'max':>8}")
    for mode, pages in (("hub", results), ("serve", served)):
        for path, r in pages.items():
            print(
                f"{mode + ' ' + path:<66} {r['cold_ms']:8.1f} {r['median_ms']:8.1f} "
                f"{r['max_ms']:8.1f}"
            )
    print(
        f"\nworst median {worst:.1f} ms; goal < {GOAL_MS:.0f} ms: {'met' if worst < GOAL_MS else 'MISSED'}"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

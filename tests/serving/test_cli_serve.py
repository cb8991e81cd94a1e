"""`adapterhub serve` as a user runs it: a subprocess on a loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_command_preloads_and_answers(tiny_backbone_path, zoo, tmp_path):
    port = _free_port()
    env = {**os.environ, "ADAPTERHUB_ADMIN_TOKEN": "tok", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "adapterhub", "serve",
        "--backbone", str(tiny_backbone_path),
        "--registry", str(zoo.registry),
        "--preload", "sentiment/*@team",
        "--max-resident", "8",
        "--port", str(port),
    ]  # fmt: skip
    log = open(tmp_path / "serve.log", "w+")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.3)
        resident = {r["id"] for r in httpx.get(f"{url}/v1/adapters").json()["resident"]}
        # newest version of each matching adapter, nothing else
        assert resident == {
            "sentiment/de@team:1.1.0",
            "sentiment/fr@team:1.0.0",
            "sentiment/es@team:1.0.0",
            "sentiment/nl@team:1.0.0",
        }
        answer = httpx.post(
            f"{url}/v1/predict", json={"adapter": "sentiment/de@team", "inputs": ["gut"]}
        )
        assert answer.status_code == 200 and answer.json()["predictions"][0]["label"] in {
            "negative",
            "positive",
        }
        assert "tokens" not in answer.json()["predictions"][0]  # no null fields
        metrics = httpx.get(f"{url}/metrics").text
        assert "adapterhub_adapter_loads_total 4.0" in metrics  # preloads count as loads
        headers = {"Authorization": "Bearer tok"}
        assert (
            httpx.post(f"{url}/v1/adapters/topic/x1@bulk:load", headers=headers).status_code == 200
        )
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "serving" in (tmp_path / "serve.log").read_text()


def test_capacity_flags_are_exclusive():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "adapterhub",
            "serve",
            "--max-resident",
            "2",
            "--memory-budget",
            "10",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "not allowed with argument" in result.stderr

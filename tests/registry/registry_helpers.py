"""Helpers shared by the registry tests (a module with a unique name, so that test files can
import it whatever other conftest modules are loaded)."""

from __future__ import annotations

import copy
import json
from pathlib import Path


def make_lora_dir(
    backbone,
    folder: Path,
    *,
    seed: int = 0,
    r: int = 4,
    labels=("negative", "positive"),
    targets=("query", "value"),
) -> Path:
    """A real PEFT LoRA adapter (random, non-zero B) plus a head, as train writes it."""
    import peft
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = peft.get_peft_model(
        copy.deepcopy(backbone.model),
        peft.LoraConfig(
            r=r, lora_alpha=2 * r, target_modules=list(targets), init_lora_weights=False
        ),
    )
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if labels:
        generator = torch.Generator().manual_seed(seed + 1000)
        save_file(
            {
                "weight": torch.randn(len(labels), backbone.hidden_size, generator=generator),
                "bias": torch.randn(len(labels), generator=generator),
            },
            str(folder / "head.safetensors"),
            metadata={"labels": json.dumps(list(labels)), "task_type": "sequence"},
        )
    return folder


METRICS = {"dataset": "sentiment-de", "split": "test", "accuracy": 0.81, "macro_f1": 0.79}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RegistryServer:
    """Debian's docker-registry on a loopback port with its own storage folder."""

    def __init__(self, folder: Path, *, user: str | None = None, password: str | None = None):
        import shutil
        import subprocess

        self.binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
        self.folder = folder
        self.port = _free_port()
        self.host = f"127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "version": 0.1,
            "log": {"level": "error"},
            "storage": {"filesystem": {"rootdirectory": str(folder / "data")}},
            "http": {"addr": self.host},
        }
        if user:
            htpasswd = folder / "htpasswd"
            htpasswd.write_text(_bcrypt_line(user, password or ""))
            config["auth"] = {"htpasswd": {"realm": "adapterhub-test", "path": str(htpasswd)}}
        (folder / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        self.log = open(folder / "server.log", "wb")
        self.process = subprocess.Popen(
            [self.binary, "serve", str(folder / "config.yml")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._wait()

    def _wait(self) -> None:
        import time
        import urllib.error
        import urllib.request

        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited: {(self.folder / 'server.log').read_text()}"
                )
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return
            except urllib.error.HTTPError:
                return  # 401: up, asking for credentials
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start within 30 s")

    def url(self, repository: str = "team/adapters") -> str:
        return f"oci://{self.host}/{repository}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except Exception:
            self.process.kill()
        self.log.close()


def _bcrypt_line(user: str, password: str) -> str:
    import shutil
    import subprocess

    if shutil.which("htpasswd"):
        out = subprocess.run(
            ["htpasswd", "-Bbn", user, password], check=True, capture_output=True, text=True
        )
        return out.stdout.strip() + "\n"
    import bcrypt  # fallback when apache2-utils is absent

    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}\n"

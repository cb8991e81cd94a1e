"""Runtime and server limits: the one place their defaults live.

Each field carries its own documentation (``metadata["help"]``, as PEFT's configs do); that text
is the help of the flag ``adapterhub serve`` builds from the field, so a default or a doc
changed here changes the command line too. ``metadata`` may also name the flag (``flag``), its
``metavar``, a mutually exclusive ``group`` and an environment variable (``env``) read when the
flag is not given.

This module is imported when the CLI parser is built: keep it free of heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapterhub.errors import UsageError


def _option(default: Any, help: str, **cli: str) -> Any:
    return field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class RuntimeConfig:
    """The adapter pool and how it reads inputs (the keyword arguments of ``Runtime``)."""

    max_resident: int | None = _option(
        None,
        "resident adapters before the least recently used is evicted (default: no count limit)",
        metavar="N",
        group="capacity",
    )
    memory_budget_mb: float | None = _option(
        None,
        "megabytes of resident adapters before the least recently used is evicted",
        flag="--memory-budget",
        metavar="MB",
        group="capacity",
    )
    max_length: int | None = _option(
        None,
        "tokens per input; longer inputs are cut (default: what the backbone reads, at most 512)",
        metavar="TOKENS",
    )
    prefix: str = _option(
        "",
        "text before each sequence-task input for adapters whose manifest names no recipe prefix",
    )
    bank_chunk: int = _option(
        32,
        "slots a full adapter bank grows by at least (cut to what the capacity limit leaves)",
        metavar="SLOTS",
    )
    room_wait_s: float = _option(
        5.0,
        "seconds a load waits for a request to release a pinned adapter when only that would "
        "make room; then it answers 429",
        flag="--room-wait",
        metavar="SECONDS",
    )
    dtype: str | None = _option(
        None,
        "fp32, bf16 or fp16 (GPUs): what the backbone, the adapter banks and hooks compute in "
        "(heads and scores stay fp32); serve's default is bf16 where the CPU computes it "
        "natively (avx512_bf16 or amx_bf16 flags) or the GPU supports it, else fp32",
        metavar="DTYPE",
    )
    quantize: str | None = _option(
        None,
        "8bit: the backbone's Linear layers through bitsandbytes; int8: fbgemm's dynamic int8 "
        "for every Linear layer but the FFN down projections (CPU only; about 1.5x faster on an "
        "AVX2 EPYC, within 0.5 points on the sentiment yardstick and 1.3 on the test splits, "
        "see the README's benchmarks); default: none",
        metavar="KIND",
    )
    require_signature: bool = _option(
        False,
        "load only adapters signed by a trusted key (--trusted-key, or `adapterhub config set "
        "trusted_keys`); a signature is verified wherever there is one, with or without this",
    )
    trusted_keys: tuple[str, ...] = _option(
        (),
        "a public key (PEM) whose signatures are trusted; repeatable",
        flag="--trusted-key",
        metavar="PEM",
    )

    def __post_init__(self) -> None:
        if self.dtype not in (None, "fp32", "bf16", "fp16"):
            raise UsageError(f"--dtype {self.dtype}: use fp32, bf16 or fp16")
        if self.quantize not in (None, "8bit", "int8"):
            raise UsageError(f"--quantize {self.quantize}: use 8bit or int8")
        if self.quantize and self.dtype not in (None, "fp32"):
            raise UsageError(
                f"--quantize {self.quantize} computes in fp32; drop --dtype {self.dtype}"
            )


@dataclass(frozen=True)
class ServerConfig:
    """The server's stated limits (as Text Embeddings Inference states its own) and address."""

    host: str = _option("127.0.0.1", "address to listen on; 0.0.0.0 listens on every interface")
    port: int = _option(8080, "TCP port to listen on")
    max_batch_tokens: int = _option(
        8192,
        "token ids in one batch; it runs in forwards of similar lengths, each padded to at most "
        "this many tokens (rows x longest row)",
        metavar="TOKENS",
    )
    max_wait_ms: float = _option(
        5.0,
        "milliseconds the oldest queued request waits for others to share its batch",
        metavar="MS",
    )
    max_queue: int = _option(
        1024,
        "inputs waiting in the queue; more are refused with 429 and Retry-After",
        metavar="INPUTS",
    )
    max_queue_tokens: int = _option(
        65536,
        "token ids waiting in the queue (each input counts its own); more are refused with 429 "
        "and a Retry-After from the tokens per second of recent batches",
        metavar="TOKENS",
    )
    max_inputs: int = _option(64, "inputs (texts) per request; more get 413", metavar="N")
    max_chars: int = _option(4096, "characters per input; longer ones get 413", metavar="N")
    admin_token: str | None = _option(
        None,
        "bearer token of the admin routes (load, unload); unset disables them",
        metavar="TOKEN",
        env="ADAPTERHUB_ADMIN_TOKEN",
    )
    max_body_bytes: int = _option(
        2 * 2**20,
        "bytes of one request body; a larger one gets 413 before it is read (a declared "
        "Content-Length at once, a chunked body once its bytes pass the limit)",
        metavar="BYTES",
    )
    read_token: str | None = _option(
        None,
        "bearer token the prediction routes, /v1/adapters, /metrics and the web pages require "
        "(the admin token passes too; a browser needs a proxy or extension that sends "
        "'Authorization: Bearer TOKEN'); unset leaves them open",
        metavar="TOKEN",
        env="ADAPTERHUB_READ_TOKEN",
    )
    read_namespaces: str | None = _option(
        None,
        "comma-separated namespaces the read routes list and serve, e.g. team,adapterhub; "
        "others are 404 to all but the admin token (default: every namespace)",
        metavar="NS[,NS...]",
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UsageError(f"--port {self.port} is not a TCP port; use 0-65535")
        if self.max_inputs > self.max_queue:
            raise UsageError(
                f"--max-inputs {self.max_inputs} exceeds --max-queue {self.max_queue}: such a "
                "request could never be queued; raise --max-queue or lower --max-inputs"
            )
        for flag, value in (
            ("--max-queue-tokens", self.max_queue_tokens),
            ("--max-body-bytes", self.max_body_bytes),
        ):
            if value < 1:
                raise UsageError(f"{flag} {value} would refuse every request; use 1 or more")
        if self.read_namespaces is not None and not self.visible_namespaces:
            raise UsageError(
                f"--read-namespaces {self.read_namespaces!r} names no namespace; list some, "
                "e.g. team,adapterhub, or leave it out to serve every namespace"
            )

    @property
    def visible_namespaces(self) -> frozenset[str] | None:
        """The namespaces of ``read_namespaces``; None when every namespace is served."""
        if self.read_namespaces is None:
            return None
        return frozenset(n.strip() for n in self.read_namespaces.split(",") if n.strip())

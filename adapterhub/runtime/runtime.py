"""The runtime: one frozen backbone, a pool of resident adapters, one forward per mixed batch.

    runtime = Runtime(load_backbone(), registry=None, max_resident=1000)
    runtime.predict("sentiment/de", ["Das Buch ist gut"])        # loads on a miss, LRU-evicts
    runtime.predict(["lang/de", "sentiment/en"], ["..."])         # a stack: language, then task

Loading = resolve the id in the registry, verify the folder (sha256, shapes, backbone
fingerprint; :func:`adapterhub.registry.verify.verify_adapter_dir`), then copy its tensors into
free slots of the banks (:mod:`adapterhub.runtime.batched`). No module surgery and no lock
held across a forward: a request *pins* its adapters (:meth:`Runtime.acquire`), eviction only
takes unpinned ones, and a slot is reused only once it is free, so a load or an eviction never
disturbs a batch in flight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from adapterhub.backbone.load import prepare_backbone, torch_dtype
from adapterhub.errors import (
    AdapterHubError,
    IntegrityError,
    OverloadError,
    ServingError,
    UsageError,
)
from adapterhub.methods import get_method
from adapterhub.methods.base import Parts
from adapterhub.preprocessing import Preprocessing
from adapterhub.registry import open_adapter
from adapterhub.registry.resolver import Resolver
from adapterhub.registry.signing import SignaturePolicy
from adapterhub.runtime.banks import Bank
from adapterhub.runtime.banks import slot_bytes as bank_slot_bytes
from adapterhub.runtime.batched import Entry, build_plan, install_hooks, plan_scope
from adapterhub.runtime.padding import sub_batches
from adapterhub.tasks import get_task_type
from adapterhub.tasks.base import Encoded, encode_text, pad_batch, pad_id

log = logging.getLogger(__name__)

FAILED_LOAD_SECONDS = 30.0
"""How long a failed load is remembered: asking again within it answers the same error unread."""
FAILED_FORWARD_SECONDS = 300.0
"""How long an adapter that broke a batched forward stays quarantined (unloaded, refused)."""

DEFAULT_PREFIX = ""
"""Text put before each sequence-task input when the adapter's manifest records no
preprocessing (the recipe's ``prefix``, which training prepends to every text)."""


@dataclass
class Resident:
    """An adapter held in the banks."""

    id: str
    path: Path
    method: str
    kind: str
    labels: list[str]
    task_type: str | None
    head: tuple[torch.Tensor, torch.Tensor] | None
    entries: list[Entry]
    tensor_bytes: int
    """Bytes of the adapter's tensors as the banks hold them (the backbone's dtype) plus its
    head (fp32)."""
    slot_bytes: int
    """Bytes the adapter occupies in the banks plus its head."""
    backbone: str = ""
    parents: list[str] = field(default_factory=list)
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    """How inputs become token ids for this adapter: the manifest's record, as in training."""
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0
    layout: tuple = ()
    """Which banks the adapter lives in; rows are ordered by it so bank groups are contiguous."""
    pins: int = 0
    requests: int = 0
    retired: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "method": self.method,
            "kind": self.kind,
            "task_type": self.task_type,
            "labels": self.labels,
            "bytes": self.slot_bytes,
            "requests": self.requests,
            "loaded_at": self.loaded_at,
            "load_ms": round(self.load_seconds * 1000, 3),
        }


@dataclass
class Lease:
    """Pinned residents for one request: a single adapter, a [language, task] stack, or none."""

    adapters: tuple[Resident, ...]
    runtime: Runtime
    released: bool = False

    @property
    def ids(self) -> list[str]:
        return [a.id for a in self.adapters]

    @property
    def head_owner(self) -> Resident | None:
        for adapter in reversed(self.adapters):
            if adapter.head is not None:
                return adapter
        return None

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.runtime._unpin(self.adapters)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


@dataclass
class Row:
    """One input of a batch: its lease and its encoding (token ids; words for token tasks)."""

    lease: Lease
    encoded: Encoded
    mode: str = "classify"  # classify | embed

    @property
    def input_ids(self) -> list[int]:
        return self.encoded.input_ids


@dataclass
class RowOutput:
    logits: torch.Tensor | None = None  # [labels] or [words, labels]
    embedding: torch.Tensor | None = None  # [hidden], mean-pooled, not normalised
    error: AdapterHubError | None = None
    """Why this row has no answer (its adapter failed in the forward); other rows are unharmed."""


class Runtime:
    """A backbone plus a pool of hot-swappable adapters, served in mixed batches."""

    def __init__(
        self,
        backbone: Any,
        *,
        registry: Any = None,
        max_resident: int | None = None,
        memory_budget_mb: float | None = None,
        prefix: str = DEFAULT_PREFIX,
        max_length: int | None = None,
        bank_chunk: int = 32,
        room_wait_s: float = 5.0,
        dtype: str | None = None,
        quantize: str | None = None,
        require_signature: bool = False,
        trusted_keys: tuple[str, ...] = (),
    ) -> None:
        """``dtype`` (fp32, bf16, fp16) and ``quantize`` (int8; 8bit must be loaded so) convert the
        backbone in place first (:func:`prepare_backbone`; ``None`` keeps it as loaded). The
        banks and hooks compute in the backbone's dtype; heads and scores stay fp32.
        ``require_signature`` loads only adapters signed by one of ``trusted_keys`` (PEM public
        keys) or the user's configured ones; a signature is verified wherever there is one."""
        if max_resident is not None and max_resident < 1:
            raise UsageError("--max-resident must be at least 1")
        if memory_budget_mb is not None and memory_budget_mb <= 0:
            raise UsageError("--memory-budget must be a positive number of MB")
        self.backbone = prepare_backbone(backbone, dtype=dtype, quantize=quantize)
        self.model = backbone.model
        self.tokenizer = backbone.tokenizer
        self.device = next(self.model.parameters()).device
        self.bank_dtype = torch_dtype(getattr(backbone, "dtype", "fp32"))
        """Banks hold adapters in the backbone's dtype: the hooks then stay on their fast path
        (no gather, cast and index_add per Linear)."""
        self.registry = registry
        self.signatures = SignaturePolicy.configured().also(require_signature, trusted_keys)
        self.signatures.trusted_ids()  # unreadable keys are refused now, not at the first load
        self._opened_registry: Any = None
        self.max_resident = max_resident
        self.memory_budget = int(memory_budget_mb * 2**20) if memory_budget_mb else None
        self.prefix = prefix
        self.model_max_length = int(
            getattr(backbone, "config", {}).get("max_position_embeddings", 512)
        )
        self.max_length = min(max_length or 512, self.model_max_length)
        """Token limit of /embed inputs and of adapters whose manifest records none."""
        self.bank_chunk = (
            max(1, min(bank_chunk, max_resident)) if max_resident else max(1, bank_chunk)
        )
        self.modules = install_hooks(self.model)  # once, for the life of the runtime
        self.banks: dict[tuple, Bank] = {}
        self.residents: OrderedDict[str, Resident] = OrderedDict()  # LRU order: oldest first
        self._lock = threading.RLock()  # bookkeeping only; never held across a forward
        self._load_lock = threading.Lock()  # one loader at a time mutates the banks
        self.room_wait_s = room_wait_s
        """How long a load waits for a pinned adapter to be released when nothing else can
        make room, before it fails with OverloadError."""
        self._room = threading.Condition(self._lock)  # notified when pins drop or adapters go
        self._room_changes = 0
        self._retiring: dict[int, Resident] = {}  # unloaded while pinned: slots held still
        self._aliases: dict[str, tuple[str, float]] = {}
        self._quarantined: dict[str, tuple[float, AdapterHubError]] = {}  # id -> (until, why)
        self.counters = {
            "loads": 0,
            "evictions": 0,
            "load_failures": 0,
            "compactions": 0,
            "overloads": 0,
            "forwards": 0,
            "real_tokens": 0,
            "padded_tokens": 0,
        }
        """``forwards``: backbone forwards run; ``real_tokens`` / ``padded_tokens``: the token ids
        they read and the positions they computed (rows x longest of each forward)."""
        self.listeners: list[Any] = []  # callables(event, adapter_id, seconds) for metrics

    # ------------------------------------------------------------------ registry

    def resolve(self, adapter: str) -> str:
        """The exact id an adapter reference means (``sentiment/de`` -> the newest version that
        is not yanked), by the registry's one set of rules (:mod:`adapterhub.registry.resolver`).
        A yanked version asked for by its version is refused (:class:`YankedError`)."""
        return str(self._registry_store().resolve(adapter).require_servable().id)

    def _registry_store(self) -> Any:
        """The registry's resolver (this runtime's store, the remotes, the project store),
        made on first use and kept: a load must not re-open the stores or re-read remotes.json."""
        if self._opened_registry is None:
            self._opened_registry = Resolver.default(self.registry)
        return self._opened_registry

    def available(self) -> list[str]:
        """Every non-yanked adapter id the registry and its local-directory upstreams (the
        project's store) offer; network remotes are resolved on demand, not listed."""
        try:
            listed = self._registry_store().entries(include_yanked=False, local_only=True)
        except Exception as exc:  # an unreadable registry must not take serving down
            log.warning("cannot list the registry %s: %s", self.registry, exc)
            return []
        return [entry.manifest.id for entry in listed]

    def _exact(self, adapter: str) -> str | None:
        """The resident id a name refers to, without touching the registry when possible."""
        if adapter in self.residents:
            return adapter
        alias = self._aliases.get(adapter)
        if alias and time.monotonic() - alias[1] < 30 and alias[0] in self.residents:
            return alias[0]
        return None

    # ------------------------------------------------------------------ loading

    def _hit(self, name: str | None, pin: bool) -> Resident | None:
        """The resident ``name``, touched (and pinned) under the lock; None on a miss."""
        with self._lock:
            resident = self.residents.get(name) if name else None
            if resident is None:
                return None
            self.residents.move_to_end(name)
            if pin:
                resident.pins += 1
            return resident

    def load(self, adapter: str, *, pin: bool = False) -> Resident:
        """Make a registry adapter resident (no-op when it is); returns it.

        With ``pin`` the adapter is returned pinned (see :meth:`acquire`): pinned in the same
        critical section that finds or registers it, so no eviction can come in between.
        """
        with self._lock:
            hit = self._hit(self._exact(adapter), pin)
        if hit is not None:
            return hit
        found = self._registry_store().resolve(adapter).require_servable()
        exact = str(found.id)
        self._aliases[adapter] = (exact, time.monotonic())
        hit = self._hit(exact, pin)
        if hit is not None:
            return hit
        self._refuse_if_quarantined(exact)

        def read():  # the resolution travels on: one resolve per load, not two
            return open_adapter(
                found, self.backbone, store=self._registry_store(), signatures=self.signatures
            )

        try:
            return self._place(exact, read, pin)
        except IntegrityError as exc:  # a bad entry costs one read, not one per request
            self._quarantine(exact, exc, FAILED_LOAD_SECONDS)
            raise

    def _quarantine(self, adapter: str, error: AdapterHubError, seconds: float) -> None:
        with self._lock:
            self._quarantined[adapter] = (time.monotonic() + seconds, error)

    def _refuse_if_quarantined(self, adapter: str) -> None:
        with self._lock:
            held = self._quarantined.get(adapter)
            if held is not None and time.monotonic() >= held[0]:
                del self._quarantined[adapter]
                held = None
        if held is not None:
            raise held[1]

    def _place(self, name: str, read: Any, pin: bool = False) -> Resident:
        """Verify (``read()``) and copy an adapter's tensors into free bank slots."""
        started = time.perf_counter()
        try:
            verified = read()
            parts = self._parts(verified)
        except Exception:
            self.counters["load_failures"] += 1
            raise
        head = None
        head_bytes = 0
        if verified.head is not None:
            head = (
                verified.head["weight"].float().to(self.device),
                verified.head["bias"].float().to(self.device),
            )
            head_bytes = sum(t.numel() * t.element_size() for t in head)
        manifest = verified.manifest
        resident = Resident(
            id=name,
            path=Path(verified.path),
            method=verified.method,
            kind=manifest.kind if manifest else "task",
            labels=list(verified.labels),
            task_type=verified.task_type,
            head=head,
            entries=[],
            tensor_bytes=self._bank_bytes(parts) + head_bytes,
            slot_bytes=self._bank_bytes(parts) + head_bytes,  # the banks hold exactly these
            backbone=manifest.backbone.fingerprint if manifest else "",
            parents=list(manifest.parents) if manifest else [],
            preprocessing=self._preprocessing(manifest),
        )
        deadline = time.monotonic() + self.room_wait_s
        while True:
            # a load that must wait for a pin release waits without the load lock, so other
            # loads and unloads go on meanwhile; the whole wait is bounded by the deadline
            if not self._load_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise self._overloaded(name)
            try:
                hit = self._hit(name, pin)
                if hit is not None:
                    return hit
                banks, changes = self._make_room(parts, head_bytes)
                if banks is not None:
                    # under the load lock only: a bank that grows or compacts copies itself
                    # aside (maybe hundreds of MB) while requests keep pinning and releasing
                    for part in parts.parts:
                        bank = banks[part.bank_key]
                        slot = bank.allocate()
                        bank.write(slot, part.tensors, part.scales)
                        resident.entries.append(
                            Entry(self.modules[part.module], part.kind, bank, slot, part.activation)
                        )
                    resident.layout = tuple(id(entry.bank) for entry in resident.entries)
                    resident.load_seconds = time.perf_counter() - started
                    with self._lock:
                        self.residents[name] = resident
                        if pin:
                            resident.pins += 1
                        self.counters["loads"] += 1
                    break
            finally:
                self._load_lock.release()
            self._wait_for_room(changes, deadline, name)
        self._emit("load", name, resident.load_seconds)
        log.info("loaded %s in %.1f ms", name, resident.load_seconds * 1000)
        return resident

    def _bank_bytes(self, parts: Parts) -> int:
        """Bytes of ``parts`` as the banks hold them (``Parts.nbytes`` counts fp32)."""
        return parts.nbytes * torch.empty(0, dtype=self.bank_dtype).element_size() // 4

    def _parts(self, verified: Any) -> Parts:
        """The bank tensors of a verified adapter: its method's serving parts."""
        where = str(verified.path)
        method = get_method(verified.method)
        parts = method.serve_parts(verified.settings, verified.weights, self.modules)
        for part in parts.parts:
            if part.module not in self.modules:
                raise IntegrityError(
                    f"{where}: the adapter targets {part.module!r}, which is not a Linear of "
                    "this backbone (trained on another backbone?)"
                )
        return parts

    # ------------------------------------------------------------------ room in the banks
    #
    # What --memory-budget and --max-resident bound, at every moment (after every load, unload,
    # eviction and compaction, pinned adapters included):
    #
    #   sum over banks of capacity x slot bytes  +  the heads of the held adapters  <=  budget
    #   held adapters <= max_resident,  and every bank's capacity <= max_resident
    #
    # "Held" = resident, or unloaded but still pinned by a request (its slots are not free yet).
    # That is the allocated memory, free slots included; it is stricter than "budget plus one
    # bank chunk". A load first evicts LRU unpinned adapters until the held adapters' own bytes
    # and count leave room for the new one; then, if growing its banks would pass the budget,
    # cuts free slots out of other banks (compaction); a bank grows by max(chunk, capacity / 2)
    # slots, cut down to what the budget and the count limit leave. When only releasing a pin
    # could make room, the load waits up to room_wait_s and then fails with OverloadError (429)
    # instead of going over. Banks with 2 chunks or more of free slots after an eviction or an
    # unload shrink to one chunk of free slots (hysteresis: a load after an unload copies
    # nothing), and empty banks are dropped.

    def _bank(self, key: tuple, shapes: dict[str, tuple[int, ...]]) -> Bank:
        bank = self.banks.get(key)
        if bank is None:
            bank = Bank(shapes, device=self.device, dtype=self.bank_dtype)
            with self._lock:
                self.banks[key] = bank
        return bank

    def _held(self) -> list[Resident]:
        # caller holds self._lock
        return [*self.residents.values(), *self._retiring.values()]

    def _allocated_bytes(self) -> int:
        # caller holds self._lock
        heads = sum(_head_bytes(r) for r in self._held())
        return heads + sum(bank.nbytes for bank in self.banks.values())

    def _over(self, extra_bytes: int, extra_count: int) -> bool:
        # caller holds self._lock
        held = self._held()
        if self.max_resident is not None and len(held) + extra_count > self.max_resident:
            return True
        if self.memory_budget is not None:
            return sum(r.slot_bytes for r in held) + extra_bytes > self.memory_budget
        return False

    def _make_room(self, parts: Parts, head_bytes: int) -> tuple[dict[tuple, Bank] | None, int]:
        """The banks one more adapter goes into, each with a free slot for it, within the
        limits; ``None`` when only a pin release can make room. Also returns the room-change
        count seen when that was decided (see :meth:`_wait_for_room`). Caller holds the load
        lock."""
        incoming = self._bank_bytes(parts) + head_bytes
        if self.memory_budget is not None and incoming > self.memory_budget:
            raise ServingError(
                f"the adapter needs {incoming / 2**20:.1f} MB, more than the whole memory "
                f"budget ({self.memory_budget / 2**20:.1f} MB); raise --memory-budget"
            )
        need = Counter(part.bank_key for part in parts.parts)
        shapes = {
            p.bank_key: {n: tuple(t.shape) for n, t in p.tensors.items()} for p in parts.parts
        }
        evicted: list[str] = []
        try:
            while True:
                with self._lock:
                    changes = self._room_changes
                    before = len(evicted)
                    while self._over(incoming, 1):
                        if not self._evict_one(evicted):
                            return None, changes
                if len(evicted) > before:
                    self._tidy(need)
                growth = self._growth(need, shapes, head_bytes)
                if growth is not None:
                    break
                # the held adapters fit, their banks' free slots do not: cut those out first
                with self._lock:
                    short = self._allocated_bytes() + self._growth_bytes(need, shapes)
                    short += head_bytes - self.memory_budget
                    ordered = sorted(self.banks.items(), key=lambda kb: -_slack_bytes(kb[1]))
                    targets = {key: bank.used + need.get(key, 0) for key, bank in ordered}
                if self._compact(targets, enough=short):
                    continue
                with self._lock:  # pinned slots sit high in the banks: evict more, or wait
                    changes = self._room_changes
                    if not self._evict_one(evicted):
                        return None, changes
        finally:
            for gone in evicted:
                self._emit("eviction", gone, 0.0)
        banks = {}
        for key, slots in growth.items():
            bank = self._bank(key, shapes[key])
            if slots:
                bank.grow(slots)
            banks[key] = bank
        return banks, changes

    def _evict_one(self, evicted: list[str]) -> bool:
        # caller holds self._lock
        victim = next((r for r in self.residents.values() if r.pins == 0 and not r.retired), None)
        if victim is None:
            return False
        self._free(victim)
        self.counters["evictions"] += 1
        evicted.append(victim.id)
        return True

    def _slot_bytes(self, key: tuple, shapes: dict[tuple, dict[str, tuple[int, ...]]]) -> int:
        bank = self.banks.get(key)
        if bank is not None:
            return bank.slot_bytes
        return bank_slot_bytes(shapes[key], self.bank_dtype)

    def _deficits(self, need: Counter) -> dict[tuple, int]:
        """Slots each bank lacks for the adapter being loaded."""
        deficits = {}
        for key, count in need.items():
            bank = self.banks.get(key)
            deficits[key] = max(0, count - (len(bank.free) if bank is not None else 0))
        return deficits

    def _growth_bytes(self, need: Counter, shapes: dict) -> int:
        return sum(n * self._slot_bytes(k, shapes) for k, n in self._deficits(need).items())

    def _growth(self, need: Counter, shapes: dict, head_bytes: int) -> dict[tuple, int] | None:
        """Slots to add to each bank the adapter needs; None if even the slots it lacks would
        pass the budget."""
        with self._lock:
            deficits = self._deficits(need)
            headroom = None
            if self.memory_budget is not None:
                least = head_bytes + sum(
                    n * self._slot_bytes(k, shapes) for k, n in deficits.items()
                )
                headroom = self.memory_budget - self._allocated_bytes() - least
                if headroom < 0:
                    return None
            growing = [key for key, n in deficits.items() if n]
            extra = None  # slots each growing bank may take beyond what it lacks
            if growing and headroom is not None:
                extra = headroom // sum(self._slot_bytes(key, shapes) for key in growing)
            growth = dict.fromkeys(need, 0)
            for key in growing:
                bank = self.banks.get(key)
                capacity = bank.capacity if bank is not None else 0
                slots = max(self.bank_chunk, capacity // 2)
                if extra is not None:
                    slots = min(slots, deficits[key] + extra)
                if self.max_resident is not None:
                    slots = min(slots, self.max_resident - capacity)
                growth[key] = max(slots, deficits[key])
            return growth

    def _tidy(self, need: Counter) -> None:
        """After evictions or unloads: shrink banks with 2 chunks or more of free slots to one
        chunk of free slots, and drop empty banks (but not the ones ``need`` is about to use).
        Caller holds the load lock."""
        chunk = self.bank_chunk
        with self._lock:
            for key, bank in list(self.banks.items()):
                if bank.used == 0 and not need.get(key):
                    del self.banks[key]
            targets = {
                key: bank.used + need.get(key, 0) + chunk
                for key, bank in self.banks.items()
                if bank.capacity - bank.used - need.get(key, 0) >= 2 * chunk
            }
        if targets:
            self._compact(targets)

    def _try_tidy(self) -> None:
        # never waits: a loader holding the load lock tidies after its own evictions
        if self._load_lock.acquire(blocking=False):
            try:
                self._tidy(Counter())
            finally:
                self._load_lock.release()

    def _compact(self, targets: dict[tuple, int], enough: int | None = None) -> int:
        """Shrink banks to (at least) their target capacity; returns the bytes freed.

        A forward in flight reads ``bank.tensors`` at each Linear with the slots its plan took
        from the entries of PINNED adapters when it was built; an adapter is pinned from before
        its plan exists until after its forward ends. So a compaction never moves a pinned
        slot (the new capacity stays above the highest one) and copies into the new tensors
        every slot it keeps, at the same index: a forward sees the old tensors or the new ones,
        and the same numbers in both. The new tensors are built outside the bookkeeping lock
        (requests keep pinning meanwhile), then swapped in under it together with the moved
        adapters' new slots, unless one of those adapters was pinned in between (its plan may
        hold the old slot): that bank is then left as it was, for a later compaction. Banks are
        taken in ``targets`` order until the planned saving reaches ``enough``. Caller holds
        the load lock (nothing allocates meanwhile).
        """
        with self._lock:
            owners: dict[int, dict[int, tuple[Resident, Entry]]] = {}
            for resident in self._held():
                for entry in resident.entries:
                    owners.setdefault(id(entry.bank), {})[entry.slot] = (resident, entry)
            planned = []
            saving = 0
            for key, target in targets.items():
                bank = self.banks.get(key)
                if bank is None:
                    continue
                own = owners.get(id(bank), {})
                # a used slot with no known owner is treated as pinned: never moved
                pinned = {s for s in bank.used_slots() if s not in own or own[s][0].pins}
                target = max(target, bank.used, max(pinned, default=-1) + 1)
                if target >= bank.capacity:
                    continue
                planned.append((bank, target, pinned, own))
                saving += (bank.capacity - target) * bank.slot_bytes
                if enough is not None and saving >= enough:
                    break
        built = [
            (bank, bank.compaction(target, pinned), own) for bank, target, pinned, own in planned
        ]
        freed = 0
        with self._lock:
            for bank, compaction, own in built:
                if any(own[slot][0].pins for slot in compaction.moves):
                    continue
                before = bank.nbytes
                bank.apply(compaction)
                for old, new in compaction.moves.items():
                    own[old][1].slot = new
                freed += before - bank.nbytes
                self.counters["compactions"] += 1
        return freed

    def _wait_for_room(self, changes: int, deadline: float, name: str) -> None:
        """Wait until a pin is released or an adapter leaves (unless that happened since the
        caller saw ``changes``); past the deadline, fail with OverloadError."""
        with self._lock:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._overloaded(name)
            if self._room_changes == changes:
                self._room.wait(remaining)

    def _overloaded(self, name: str) -> OverloadError:
        # caller may hold self._lock (re-entrant)
        with self._lock:
            self.counters["overloads"] += 1
            held = len(self._held())
            allocated = self._allocated_bytes()
        limits = []
        if self.max_resident is not None:
            limits.append(f"{held} of --max-resident {self.max_resident} adapters held")
        if self.memory_budget is not None:
            limits.append(
                f"{allocated / 2**20:.1f} MB of --memory-budget "
                f"{self.memory_budget / 2**20:.1f} MB allocated"
            )
        return OverloadError(
            f"no room to load {name}: every resident adapter is in use by a request "
            f"({'; '.join(limits)}) and none was released within {self.room_wait_s:g} s; "
            "retry shortly, or raise --max-resident / --memory-budget"
        )

    def _free(self, resident: Resident) -> None:
        # caller holds self._lock; the resident has no pins
        if self.residents.get(resident.id) is resident:  # not a newer load of the same id
            del self.residents[resident.id]
        self._retiring.pop(id(resident), None)
        for entry in resident.entries:
            entry.bank.release(entry.slot)
        resident.entries = []
        resident.retired = True

    def _room_changed(self) -> None:
        # caller holds self._lock
        self._room_changes += 1
        self._room.notify_all()

    def unload(self, adapter: str) -> bool:
        """Remove an adapter from the pool; in-flight requests using it finish first (its slots
        are freed, and its banks may shrink, when the last one releases it)."""
        with self._lock:
            exact = self._exact(adapter) or adapter
            resident = self.residents.get(exact)
            if resident is None:
                return False
            del self.residents[exact]
            if resident.pins:
                resident.retired = True  # freed by the last request holding it
                self._retiring[id(resident)] = resident
            else:
                self._free(resident)
            self._room_changed()
        self._emit("unload", exact, 0.0)
        self._try_tidy()
        return True

    # ------------------------------------------------------------------ leases

    def acquire(self, spec: str | Sequence[str] | None) -> Lease:
        """Pin the adapters a request needs (loading them on a miss)."""
        if spec is None:
            names: list[str] = []
        elif isinstance(spec, str):
            names = [spec]
        else:
            names = list(spec)
        if len(names) > 2:
            raise UsageError("a stack has at most two adapters: [language, task]")
        residents: list[Resident] = []
        try:
            for name in names:
                residents.append(self.load(name, pin=True))
            _check_stack(residents)
        except BaseException:
            self._unpin(residents)
            raise
        with self._lock:
            for r in residents:
                r.requests += 1
        return Lease(tuple(residents), self)

    def _unpin(self, residents: Sequence[Resident]) -> None:
        freed = False
        with self._lock:
            for r in residents:
                r.pins -= 1
                if r.pins == 0 and r.retired and r.entries:
                    self._free(r)
                    freed = True
            self._room_changed()  # a load waiting for room may find a victim now
        if freed:
            self._try_tidy()

    # ------------------------------------------------------------------ tokenising

    def _preprocessing(self, manifest: Any) -> Preprocessing:
        """The adapter's preprocessing record (older manifests: their recipe's prefix and
        max_length), never reading past the backbone's positions."""
        record = getattr(manifest, "preprocessing", None) or getattr(manifest, "recipe", None)
        found = Preprocessing.from_dict(
            record if isinstance(record, dict) else None,
            prefix=self.prefix,
            max_length=self.max_length,
        )
        return replace(found, max_length=min(found.max_length, self.model_max_length))

    def encode(self, text: str, lease: Lease, mode: str = "classify", index: int = 0) -> Row:
        """One input as the adapter reads it: the head owner's task type tokenises it with the
        owner's preprocessing record; embeddings read the plain text."""
        owner = lease.head_owner
        if mode == "classify" and owner is not None and owner.task_type:
            task_type = get_task_type(owner.task_type)
            return Row(lease, task_type.encode(self.tokenizer, text, owner.preprocessing, index))
        return Row(lease, encode_text(self.tokenizer, text, self.max_length), mode)

    # ------------------------------------------------------------------ the forward

    def forward(self, rows: Sequence[Row]) -> list[RowOutput]:
        """Backbone forwards for rows that may each use different adapters or none: one per
        sub-batch of similar lengths (usually one for all), every adapter mixed in each.

        Fault isolation: if the batch fails, each adapter set's rows run again on their own;
        rows whose adapters fail alone get ``error`` (and those adapters are quarantined), every
        other row is answered as if the bad rows had never been there.
        """
        try:
            return self._forward(rows)
        except Exception as exc:
            groups: dict[tuple[str, ...], list[int]] = {}
            for i, row in enumerate(rows):
                groups.setdefault(tuple(row.lease.ids), []).append(i)
            if len(groups) == 1 and not next(iter(groups)):
                raise  # the bare backbone itself failed: nothing to isolate
            log.warning("a batch of %d rows failed (%s); retrying per adapter", len(rows), exc)
        outputs: list[RowOutput] = [RowOutput() for _ in rows]
        for ids, indices in groups.items():
            try:
                for i, output in zip(indices, self._forward([rows[i] for i in indices])):
                    outputs[i] = output
            except (
                AdapterHubError
            ) as error:  # the request's fault (no head, ...), not the adapter's
                for i in indices:
                    outputs[i] = RowOutput(error=error)
            except Exception as exc:
                error = ServingError(
                    f"{', '.join(ids)} failed in the batched forward ({type(exc).__name__}: "
                    f"{exc}); it is quarantined for {FAILED_FORWARD_SECONDS:.0f} s - check the "
                    "adapter with `adapterhub registry verify`"
                )
                log.error("quarantining %s: %s", ", ".join(ids), exc)
                for adapter_id in ids:
                    self._quarantine(adapter_id, error, FAILED_FORWARD_SECONDS)
                    self.unload(adapter_id)
                for i in indices:
                    outputs[i] = RowOutput(error=error)
        return outputs

    def _forward(self, rows: Sequence[Row]) -> list[RowOutput]:
        """One forward per sub-batch of similar lengths (:func:`padding.sub_batches`): a short
        row padded to a long one's length costs as much as the long one, so ragged rows run
        in as many forwards as their modelled cost says pays; each has its own adapter plan."""
        groups = sub_batches([len(row.input_ids) for row in rows])
        if len(groups) == 1:
            return self._forward_padded(rows)
        result: list[RowOutput] = [RowOutput()] * len(rows)
        for indices in groups:
            for i, output in zip(indices, self._forward_padded([rows[i] for i in indices])):
                result[i] = output
        return result

    def _forward_padded(self, rows: Sequence[Row]) -> list[RowOutput]:
        """ONE backbone forward of ``rows`` padded to the longest."""
        if not rows:
            return []
        # rows of adapters that share banks next to each other (bare rows last): each bank's
        # group is then a contiguous span the hooks update in place
        order = sorted(
            range(len(rows)),
            key=lambda i: (not rows[i].lease.adapters, [a.layout for a in rows[i].lease.adapters]),
        )
        if order != list(range(len(rows))):
            outputs = self._forward_padded([rows[i] for i in order])
            result: list[RowOutput] = [RowOutput()] * len(rows)
            for position, i in enumerate(order):
                result[i] = outputs[position]
            return result
        batch = pad_batch([r.input_ids for r in rows], pad_id(self.tokenizer))
        self.counters["forwards"] += 1
        self.counters["real_tokens"] += int(batch["attention_mask"].sum())
        self.counters["padded_tokens"] += batch["input_ids"].numel()
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        plan = build_plan([[a.entries for a in r.lease.adapters] for r in rows], self.device)
        with torch.inference_mode(), plan_scope(plan):
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        hidden = hidden.float()
        pooled = self.backbone.mean_pool(hidden, mask)
        outputs = [RowOutput() for _ in rows]
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if row.mode == "embed":
                outputs[i].embedding = pooled[i]
                continue
            owner = row.lease.head_owner
            if owner is None:
                raise UsageError(
                    f"{', '.join(row.lease.ids) or 'the backbone'} has no task head to predict "
                    "with; use /embed for embeddings"
                )
            groups.setdefault(owner.id, []).append(i)
        for indices in groups.values():
            owner = rows[indices[0]].lease.head_owner
            task_type = get_task_type(owner.task_type)
            with torch.inference_mode():
                logits = task_type.head_logits(
                    hidden[indices], pooled[indices], owner.head, [rows[i].encoded for i in indices]
                )
            for i, row_logits in zip(indices, logits):
                outputs[i].logits = row_logits.cpu()
        for output in outputs:
            if output.embedding is not None:
                output.embedding = output.embedding.cpu()
        return outputs

    # ------------------------------------------------------------------ conveniences

    def predict(self, spec: str | Sequence[str], texts: Sequence[str]) -> list[dict[str, Any]]:
        """Labels and scores for ``texts`` with one adapter or a [language, task] stack."""
        with self.acquire(spec) as lease:
            rows = [self.encode(t, lease) for t in texts]
            return [
                format_prediction(lease, row, out) for row, out in zip(rows, self.forward(rows))
            ]

    def describe_residents(self) -> list[dict[str, Any]]:
        """Resident adapters, least recently used first."""
        with self._lock:
            return [r.describe() for r in self.residents.values()]

    def resident_names(self) -> list[str]:
        """Every name a request can use for a resident adapter: its exact id and the short ids
        resolved to it (what a router in front of several runtimes matches requests against)."""
        with self._lock:
            names = list(self.residents)
            names += [a for a, (exact, _) in self._aliases.items() if exact in self.residents]
            return names

    def stats(self) -> dict[str, Any]:
        """Counts and bytes of the pool. ``allocated_bytes`` (bank capacity, free slots
        included, plus the heads of held adapters) is what ``memory_budget_bytes`` bounds;
        ``bank_live_bytes`` is the part of the banks that adapters occupy."""
        with self._lock:
            residents = list(self.residents.values())
            held = self._held()
            banks = list(self.banks.values())
            head_bytes = sum(_head_bytes(r) for r in held)
            bank_bytes = sum(b.nbytes for b in banks)
            return {
                "resident": len(residents),
                "retiring": len(held) - len(residents),
                "resident_bytes": sum(r.slot_bytes for r in residents),
                "tensor_bytes": sum(r.tensor_bytes for r in residents),
                "bank_bytes": bank_bytes,
                "bank_live_bytes": sum(b.used * b.slot_bytes for b in banks),
                "head_bytes": head_bytes,
                "allocated_bytes": bank_bytes + head_bytes,
                "banks": len(banks),
                "bank_slots": sum(b.capacity for b in banks),
                "max_resident": self.max_resident,
                "memory_budget_bytes": self.memory_budget,
                **self.counters,
            }

    def _emit(self, event: str, adapter: str, seconds: float) -> None:
        for listener in self.listeners:
            try:
                listener(event, adapter, seconds)
            except Exception:  # metrics must never break serving
                log.exception("metrics listener failed")


def _slack_bytes(bank: Bank) -> int:
    return (bank.capacity - bank.used) * bank.slot_bytes


def _head_bytes(resident: Resident) -> int:
    return sum(t.numel() * t.element_size() for t in resident.head or ())


def _check_stack(residents: Sequence[Resident]) -> None:
    """A stack is [language adapter, task adapter]: two different adapters, in that order."""
    if len(residents) < 2:
        return
    language, task = residents
    if language.id == task.id:
        raise UsageError(f"the stack names {task.id} twice; a stack is [language, task]")
    if language.kind != "language" or task.kind != "task":
        raise UsageError(
            f"a stack is [language adapter, task adapter]; got [{language.id} ({language.kind}), "
            f"{task.id} ({task.kind})]"
        )


def format_prediction(lease: Lease, row: Row, output: RowOutput) -> dict[str, Any]:
    """One row's answer as its head owner's task type shapes it (``{"label", "scores"}`` for a
    sequence task, ``{"tokens": [...]}`` for a token task). A row whose adapter failed raises."""
    if output.error is not None:
        raise output.error
    owner = lease.head_owner
    if owner is None or output.logits is None:
        raise UsageError(f"{', '.join(lease.ids) or 'the backbone'} has no task head")
    return get_task_type(owner.task_type).format(owner.labels, row.encoded, output.logits)

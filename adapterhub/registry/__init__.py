"""The adapter registry: identity, integrity, atomic publish, search and sharing between teams.

Entries ``<namespace>/<task>/<lang>/<version>/`` hold the PEFT pair, the head, a model card and a
manifest (FORMAT.md); stores are a local folder (default ``settings.registry_dir()``), any fsspec
URL, or an OCI registry (``oci://host[:port]/repo``). Public API::

    publish(adapter_dir, "sentiment/de:1.0.0", backbone=bb, metrics={...}) -> Manifest  # @local
    resolution("sentiment/de") -> Resolution   # exact id + the store it comes from + manifest
    resolve("sentiment/de", backbone=bb) -> Path          # a verified local entry, pulled on a miss
    open_adapter("sentiment/de", bb) -> VerifiedAdapter   # resolve + verify, with the tensors
    verify_adapter_dir(path, backbone=None) -> VerifiedAdapter
    search(task=..., lang=..., backbone=..., method=..., metric=...) -> list[Manifest]
    pull / push / yank / gc / reindex / export_bundle / import_adapter
    publish(..., sign="key.pem"); pull_entry(..., signatures=SignaturePolicy(True, ("pub.pem",)))
    audit() -> list[EntryReport]   # per entry: sha256, backbone fingerprint, signature

Every id resolves the same way everywhere (:mod:`adapterhub.registry.resolver`): the local store,
then the remotes in their configured order, then the project store; your namespace, then
``adapterhub``; the newest version no store marks as yanked.
"""

from adapterhub.registry.api import (
    export_bundle,
    find,
    gc,
    import_adapter,
    local_store,
    open_adapter,
    publish,
    pull,
    pull_entry,
    push,
    reindex,
    resolution,
    resolve,
    search,
    show,
    verify,
    yank,
)
from adapterhub.registry.audit import EntryReport, audit
from adapterhub.registry.ids import (
    BUILTIN_NAMESPACE,
    AdapterId,
    Version,
    parse_id,
    user_namespace,
)
from adapterhub.registry.manifest import BackboneRef, Manifest, Metrics, render_card
from adapterhub.registry.remotes import (
    add_remote,
    list_remotes,
    project_registry_dir,
    remove_remote,
)
from adapterhub.registry.resolver import Resolution, Resolver
from adapterhub.registry.signing import SignaturePolicy, SignatureStatus
from adapterhub.registry.stores import FsspecStore, LocalStore, OCIStore, Store, open_store
from adapterhub.registry.verify import VerifiedAdapter, verify_adapter_dir

__all__ = [
    "BUILTIN_NAMESPACE",
    "AdapterId",
    "BackboneRef",
    "EntryReport",
    "FsspecStore",
    "LocalStore",
    "Manifest",
    "Metrics",
    "OCIStore",
    "Resolution",
    "Resolver",
    "SignaturePolicy",
    "SignatureStatus",
    "Store",
    "VerifiedAdapter",
    "Version",
    "add_remote",
    "audit",
    "export_bundle",
    "find",
    "gc",
    "import_adapter",
    "list_remotes",
    "local_store",
    "open_adapter",
    "open_store",
    "parse_id",
    "project_registry_dir",
    "publish",
    "pull",
    "pull_entry",
    "push",
    "reindex",
    "remove_remote",
    "render_card",
    "resolution",
    "resolve",
    "search",
    "show",
    "user_namespace",
    "verify",
    "verify_adapter_dir",
    "yank",
]

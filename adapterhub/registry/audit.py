"""``registry verify``'s report: for each entry of a local store, whether its files match their
sha256, whether it was trained on the given backbone, and whether it is signed, by whom, and
whether that signature verifies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapterhub.errors import IntegrityError, UntrustedError, UsageError
from adapterhub.registry.ids import AdapterId
from adapterhub.registry.manifest import MANIFEST, SIGNATURE, Manifest
from adapterhub.registry.resolver import Resolver
from adapterhub.registry.signing import (
    SignaturePolicy,
    SignatureStatus,
    bundle_key_id,
    check_entry,
    short_id,
)
from adapterhub.registry.stores import LocalStore, Store, open_store
from adapterhub.registry.verify import check_files_against_manifest, verify_adapter_dir


@dataclass(frozen=True)
class EntryReport:
    """One entry's checks; ``problem`` is the first failure (None: the entry is fine)."""

    id: str
    sha256: str
    """``ok`` or ``bad`` (a file missing, resized or changed, or an unlisted one)."""
    fingerprint: str
    """``match``, ``mismatch``, or ``not checked`` (no backbone given)."""
    signature: str
    """``valid``, ``invalid`` or ``unsigned``."""
    key_id: str | None = None
    trusted: bool = False
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def describe(self) -> str:
        """``sha256 ok, fingerprint match, signature valid (key 1a2b..., trusted)``."""
        signature = self.signature
        if self.signature == "valid":
            status = SignatureStatus(True, self.key_id or "", self.trusted)
            signature = status.describe()
        elif self.signature == "invalid" and self.key_id:
            signature = f"invalid (key {short_id(self.key_id)})"
        return f"sha256 {self.sha256}, fingerprint {self.fingerprint}, signature {signature}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ok": self.ok,
            "sha256": self.sha256,
            "fingerprint": self.fingerprint,
            "signature": self.signature,
            "key_id": self.key_id,
            "trusted": self.trusted,
            "problem": self.problem,
        }


def audit(
    adapter_id: str | AdapterId | None = None,
    *,
    store: str | Path | Store | None = None,
    backbone: Any = None,
    signatures: SignaturePolicy | None = None,
) -> list[EntryReport]:
    """Check one entry (as the id resolves in ``store``) or every entry of a local store.

    ``backbone``: a loaded backbone to check fingerprints and shapes against; ``signatures``
    (default: your settings): which keys count as trusted, and whether unsigned or untrusted
    entries are problems."""
    local = open_store(store)
    if not isinstance(local, LocalStore):
        raise UsageError(f"{local} is not a local directory store; pull the entry to verify it")
    ids = (
        [Resolver.only(local).resolve(adapter_id).id]
        if adapter_id
        else sorted(local.ids(), key=lambda a: (a.namespace, a.task, a.lang, a.version))
    )
    policy = signatures if signatures is not None else SignaturePolicy.configured()
    return [_report(local.entry_path(aid), str(aid), backbone, policy) for aid in ids]


def _report(path: Path, aid: str, backbone: Any, policy: SignaturePolicy) -> EntryReport:
    problems: list[str] = []
    sha256, fingerprint = "bad", "not checked"
    try:
        manifest = Manifest.from_json((path / MANIFEST).read_bytes(), where=str(path / MANIFEST))
        check_files_against_manifest(path, manifest)
        sha256 = "ok"
        theirs = getattr(backbone, "fingerprint", None)
        if theirs:
            fingerprint = "match" if theirs == manifest.backbone.fingerprint else "mismatch"
    except (IntegrityError, OSError) as exc:
        problems.append(str(exc))
    try:
        verify_adapter_dir(path, backbone, require_manifest=True, expected_id=aid)
    except IntegrityError as exc:
        problems.append(str(exc))
    # which key and whether it verifies, whatever the policy; then the policy's verdict
    lenient = SignaturePolicy(trusted_keys=policy.trusted_keys)
    try:
        status = check_entry(path, lenient, what=aid)
        signature, key_id, trusted = status.state, status.key_id or None, status.trusted
    except IntegrityError as exc:
        signature, key_id, trusted = "invalid", _key_id_named(path), False
        problems.append(str(exc))
    if signature != "invalid" and policy.require:
        try:
            check_entry(path, policy, what=aid)
        except UntrustedError as exc:
            problems.append(str(exc))
    return EntryReport(
        aid, sha256, fingerprint, signature, key_id, trusted, problems[0] if problems else None
    )


def _key_id_named(path: Path) -> str | None:
    """The key id an invalid signature names, if it names one."""
    try:
        return bundle_key_id(path / SIGNATURE)
    except (IntegrityError, OSError):
        return None


__all__ = ["EntryReport", "audit"]

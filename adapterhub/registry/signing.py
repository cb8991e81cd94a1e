"""Signed entries: who published an entry, on top of sha256's "these bytes did not change".

An entry may carry a signature made with OpenSSF model-signing (the ``sign`` extra): ``model.sig``,
a sigstore bundle whose DSSE envelope signs an in-toto statement of every file's sha256, made
with an elliptic-curve private key (P-256, P-384 or P-521; offline, no transparency log), and
``signer.pem``, the public key that made it. The signature covers every file of the entry,
``manifest.json`` included, so the id, labels, metrics and preprocessing are signed as well as
the weights, and a signature moved onto another entry does not verify. The manifest cannot list
the signature that signs it, so the two files travel beside it, as ``yanked.json`` does, through
every store and bundle.

Verification (:func:`check_entry`, on pull, import, every serving load and ``registry verify``):
an entry without the two files is unsigned; one with them must verify, against the trusted key
of the same key id when there is one, else against its own ``signer.pem`` (which then proves the
files are what that key signed, not that anyone trusts the key): anything else is an
:class:`IntegrityError`. A :class:`SignaturePolicy` that requires a signature also refuses an
unsigned entry and one signed by a key that is not trusted (:class:`UntrustedError`). Policies
come from the user's settings (``adapterhub config set require_signature yes``,
``trusted_keys``), a remote's entry in remotes.json, and a command's flags; every one that
applies is enforced.

A key id is model-signing's: the sha256 of the public key's SubjectPublicKeyInfo PEM.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapterhub import userconfig
from adapterhub.errors import IntegrityError, UntrustedError, UsageError
from adapterhub.registry.manifest import SIGNATURE, SIGNER_KEY, YANKED

UNSIGNED_FILES = (SIGNATURE, SIGNER_KEY, YANKED)
"""The files of an entry the signature leaves out: itself, its key, and the mutable yank mark."""
MAX_SIGNATURE_BYTES = 1 << 20
_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_MAKE_KEY = "openssl ecparam -name prime256v1 -genkey -noout | openssl pkcs8 -topk8 -nocrypt"


def _check_key_file(value: str, where: str) -> str:
    if value and not Path(value).expanduser().is_file():
        raise UsageError(f"{where}: {value} is not a file; give the path of a PEM key")
    return str(Path(value).expanduser().resolve()) if value else ""


def _check_key_files(value: str, where: str) -> str:
    return ",".join(_check_key_file(part.strip(), where) for part in _split(value))


def _check_yes_no(value: str, where: str) -> str:
    text = value.strip().lower()
    if text in ("yes", "true", "1", "on"):
        return "yes"
    if text in ("no", "false", "0", "off", ""):
        return "no"
    raise UsageError(f"{where}: {value!r} is not yes or no")


SIGNING_KEY_SETTING = userconfig.define(
    userconfig.Setting(
        name="signing_key",
        help="EC private key (PEM) that publish and train sign entries with (default: none)",
        env="ADAPTERHUB_SIGNING_KEY",
        default="",
        check=_check_key_file,
    )
)
TRUSTED_KEYS_SETTING = userconfig.define(
    userconfig.Setting(
        name="trusted_keys",
        help="public keys (PEM files, comma-separated) whose signatures you trust",
        env="ADAPTERHUB_TRUSTED_KEYS",
        default="",
        check=_check_key_files,
    )
)
REQUIRE_SETTING = userconfig.define(
    userconfig.Setting(
        name="require_signature",
        help="yes: pull, import and serving refuse entries not signed by a trusted key",
        env="ADAPTERHUB_REQUIRE_SIGNATURE",
        default="no",
        check=_check_yes_no,
    )
)


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def configured_signing_key() -> Path | None:
    """The key ``adapterhub config set signing_key`` (or ``$ADAPTERHUB_SIGNING_KEY``) names."""
    value = userconfig.get(SIGNING_KEY_SETTING.name)[0]
    return Path(value) if value else None


# --------------------------------------------------------------------------- the library


def _library() -> Any:
    """model-signing's modules, or one line saying what to install.

    Imported on first use, not with this module: it pulls in sigstore (~1.9 s warm here, against
    ~0.85 s for the whole registry API), which an unsigned entry never needs, and it is an
    optional extra.
    """
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from model_signing import hashing, signing, verifying
    except ImportError as exc:
        raise UsageError(
            f"signed entries need OpenSSF model-signing ({exc.name} is missing); install the "
            "sign extra: pip install 'adapterhub[sign]'"
        ) from None
    return _Library(serialization, ec, hashing, signing, verifying)


@dataclass(frozen=True)
class _Library:
    serialization: Any
    ec: Any
    hashing: Any
    signing: Any
    verifying: Any


def _public_pem(lib: _Library, public_key: Any) -> bytes:
    return public_key.public_bytes(
        encoding=lib.serialization.Encoding.PEM,
        format=lib.serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def _ec_public_key(lib: _Library, key: Any, where: str) -> Any:
    if not isinstance(key, lib.ec.EllipticCurvePublicKey) or key.curve.name not in _CURVES:
        raise UsageError(
            f"{where} is not an elliptic-curve key on P-256, P-384 or P-521, the keys "
            f"model-signing signs with; make one with `{_MAKE_KEY} > key.pem`"
        )
    return key


def read_public_key(path: str | Path) -> tuple[bytes, str]:
    """``(SubjectPublicKeyInfo PEM, key id)`` of a PEM public key (or of a private key's public
    half, so a publisher may name their own key file)."""
    lib = _library()
    data = _read_pem(Path(path))
    try:
        key = lib.serialization.load_pem_public_key(data)
    except ValueError:
        try:
            key = lib.serialization.load_pem_private_key(data, None).public_key()
        except (ValueError, TypeError) as exc:
            raise UsageError(f"{path} is not a PEM public key ({exc})") from exc
    pem = _public_pem(lib, _ec_public_key(lib, key, str(path)))
    return pem, key_id(pem)


def key_id(public_pem: bytes) -> str:
    """model-signing's key id: the sha256 of the SubjectPublicKeyInfo PEM."""
    return hashlib.sha256(public_pem).hexdigest()


def short_id(identifier: str) -> str:
    return identifier[:16]


def _read_pem(path: Path) -> bytes:
    if not path.is_file():
        raise UsageError(f"{path} is not a file; give the path of a PEM key")
    if path.stat().st_size > MAX_SIGNATURE_BYTES:
        raise UsageError(f"{path} is too large to be a PEM key")
    return path.read_bytes()


# --------------------------------------------------------------------------- signing


def sign_entry(folder: str | Path, private_key: str | Path) -> str:
    """Sign every file in the entry folder ``folder`` (its payload, card and ``manifest.json``,
    which must all be there) with ``private_key``; writes ``model.sig`` and ``signer.pem`` into
    it and returns the key id."""
    lib = _library()
    folder, private_key = Path(folder), Path(private_key)
    try:
        key = lib.serialization.load_pem_private_key(_read_pem(private_key), None)
    except TypeError:
        raise UsageError(
            f"{private_key} is encrypted; model-signing's key signer reads unencrypted PEM keys: "
            "decrypt a copy (openssl pkcs8 -in KEY -out PLAIN.pem) and keep it private"
        ) from None
    except ValueError as exc:
        raise UsageError(f"{private_key} is not a PEM private key ({exc})") from exc
    if not hasattr(key, "public_key"):
        raise UsageError(f"{private_key} holds no private key")
    pem = _public_pem(lib, _ec_public_key(lib, key.public_key(), str(private_key)))
    hashing_config = lib.hashing.Config().set_ignored_paths(paths=list(UNSIGNED_FILES))
    config = lib.signing.Config().use_elliptic_key_signer(private_key=private_key)
    config.set_hashing_config(hashing_config).sign(folder, folder / SIGNATURE)
    (folder / SIGNER_KEY).write_bytes(pem)
    return key_id(pem)


# --------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class SignaturePolicy:
    """What a command or a server accepts: ``require`` refuses entries not signed by one of
    ``trusted_keys`` (PEM files); without it, a signature is checked where one exists."""

    require: bool = False
    trusted_keys: tuple[str, ...] = ()

    @classmethod
    def configured(cls) -> SignaturePolicy:
        """The user's settings: ``require_signature`` and ``trusted_keys``."""
        require = userconfig.get(REQUIRE_SETTING.name)[0] == "yes"
        return cls(require, tuple(_split(userconfig.get(TRUSTED_KEYS_SETTING.name)[0])))

    @classmethod
    def of_remote(cls, info: Mapping[str, Any] | None) -> SignaturePolicy:
        """A remote's policy, from its entry in remotes.json."""
        if not info:
            return cls()
        keys = info.get("trusted_keys") or []
        return cls(bool(info.get("require_signature")), tuple(str(k) for k in keys))

    def also(
        self, require: bool = False, trusted_keys: Iterable[str | Path] = ()
    ) -> SignaturePolicy:
        """This policy and another one, both enforced."""
        keys = [*self.trusted_keys, *(str(k) for k in trusted_keys)]
        return SignaturePolicy(self.require or require, tuple(dict.fromkeys(keys)))

    def merged(self, other: SignaturePolicy) -> SignaturePolicy:
        return self.also(other.require, other.trusted_keys)

    def trusted_ids(self) -> dict[str, str]:
        """``{key id: PEM file}`` of the trusted keys (each must be a readable EC public key)."""
        if self.require and not self.trusted_keys:
            raise UsageError(
                "requiring a signature needs at least one trusted key: add --trusted-key PEM "
                "(or `adapterhub config set trusted_keys PEM`, or the remote's --trusted-key)"
            )
        return {read_public_key(path)[1]: path for path in self.trusted_keys}


@dataclass(frozen=True)
class SignatureStatus:
    """What :func:`check_entry` found."""

    signed: bool
    key_id: str = ""
    trusted: bool = False

    @property
    def state(self) -> str:
        return "valid" if self.signed else "unsigned"

    def describe(self) -> str:
        if not self.signed:
            return "unsigned"
        trust = "trusted" if self.trusted else "not a trusted key"
        return f"valid (key {short_id(self.key_id)}, {trust})"

    def to_dict(self) -> dict[str, Any]:
        return {"signature": self.state, "key_id": self.key_id or None, "trusted": self.trusted}


def check_entry(
    folder: str | Path, policy: SignaturePolicy | None = None, *, what: str | None = None
) -> SignatureStatus:
    """Verify the signature of the entry folder ``folder`` where it has one and apply ``policy``.

    Call it on a folder whose files passed :func:`~adapterhub.registry.verify.verify_adapter_dir`.
    ``what`` names the entry in messages. Raises :class:`IntegrityError` for a signature that does
    not match the files (or is malformed), :class:`UntrustedError` when the policy refuses.
    """
    folder = Path(folder)
    policy = policy or SignaturePolicy()
    what = what or str(folder)
    signature, signer = folder / SIGNATURE, folder / SIGNER_KEY
    present = [p for p in (signature, signer) if p.exists() or p.is_symlink()]
    if not present:
        if policy.require:
            policy.trusted_ids()  # a policy without keys is a usage error, said first
            raise UntrustedError(
                f"{what} is unsigned, and a signature by a trusted key is required; ask its "
                "publisher for a signed version (registry publish --sign KEY), or drop "
                "--require-signature"
            )
        return SignatureStatus(False)
    for path in (signature, signer):
        if path.is_symlink() or not path.is_file():
            raise IntegrityError(
                f"{what}: {present[0].name} without a regular {path.name}; the signature was "
                "tampered with or cut short (pull the entry again)"
            )
        if path.stat().st_size > MAX_SIGNATURE_BYTES:
            raise IntegrityError(f"{path} is over {MAX_SIGNATURE_BYTES} bytes; refusing it")
    signed_by = bundle_key_id(signature)
    trusted = policy.trusted_ids()
    key_file = trusted.get(signed_by)
    if key_file is None:
        own, own_id = read_public_key_bytes(signer.read_bytes(), signer)
        if own_id != signed_by:
            raise IntegrityError(
                f"{signature} was made by key {short_id(signed_by)}, but {signer} is key "
                f"{short_id(own_id)}; the signature was tampered with (pull the entry again)"
            )
        key_file = str(signer)
    _verify(folder, signature, Path(key_file), what)
    status = SignatureStatus(True, signed_by, signed_by in trusted)
    if policy.require and not status.trusted:
        raise UntrustedError(
            f"{what} is signed by key {short_id(signed_by)}, which is not a trusted key; trust "
            f"it (--trusted-key PEM, or `adapterhub config set trusted_keys`) only if you know "
            "whose it is"
        )
    return status


def read_public_key_bytes(data: bytes, where: Path) -> tuple[bytes, str]:
    """:func:`read_public_key` of bytes already read; a bad key is an :class:`IntegrityError`
    (it is part of an entry, not something the user typed)."""
    lib = _library()
    try:
        key = lib.serialization.load_pem_public_key(data)
        pem = _public_pem(lib, _ec_public_key(lib, key, str(where)))
    except (ValueError, UsageError) as exc:
        raise IntegrityError(f"{where} is not an EC public key in PEM ({exc})") from exc
    return pem, key_id(pem)


def bundle_key_id(signature: Path) -> str:
    """The key id a sigstore bundle names (``verificationMaterial.publicKey.hint``)."""
    try:
        bundle = json.loads(signature.read_bytes())
        hint = bundle["verificationMaterial"]["publicKey"]["hint"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"{signature} is not a key-signed sigstore bundle ({exc!r}); the signature is "
            "corrupt (pull the entry again)"
        ) from exc
    if not isinstance(hint, str) or not re.fullmatch(r"[0-9a-f]{64}", hint):
        raise IntegrityError(f"{signature} names no valid key id; the signature is corrupt")
    return hint


def _verify(folder: Path, signature: Path, public_key: Path, what: str) -> None:
    lib = _library()
    # dot files are store bookkeeping (a yank being written), never payload: the manifest check
    # skips them too
    ignored = [*UNSIGNED_FILES, *(p.name for p in folder.iterdir() if p.name.startswith("."))]
    config = lib.verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    config.set_hashing_config(lib.hashing.Config().set_ignored_paths(paths=ignored))
    try:
        config.verify(folder, signature)
    except Exception as exc:  # the library raises ValueError, InvalidSignature, protobuf errors
        raise IntegrityError(
            f"{what}: its signature ({signature.name}) does not verify: {_reason(exc)}; the "
            "entry was changed after it was signed: pull it again, or ask its publisher"
        ) from exc


def _reason(exc: Exception) -> str:
    """model-signing's mismatch message without its digests: which files differ. (It formats a
    list of strings, so the quotes around names may come escaped.)"""
    text = str(exc)
    quote = r"\\?'"
    changed = re.findall(rf"Hash mismatch for {quote}([^'\\]+){quote}", text)
    extra = re.findall(rf"Extra files found in model {quote}[^'\\]*{quote}: ([^'\"\\\]]+)", text)
    missing = re.findall(rf"Missing files in model {quote}[^'\\]*{quote}: ([^'\"\\\]]+)", text)
    parts = [f"{name} changed" for name in changed]
    parts += [f"{names.strip()} not signed" for names in extra]
    parts += [f"{names.strip()} missing" for names in missing]
    if parts:
        return "; ".join(parts)
    return type(exc).__name__ + (f": {text}" if text else ": the signature is not the key's")


__all__ = [
    "SignaturePolicy",
    "SignatureStatus",
    "check_entry",
    "configured_signing_key",
    "key_id",
    "read_public_key",
    "sign_entry",
]

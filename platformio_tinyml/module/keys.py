"""Ed25519 signing keys for inference modules (PEM files, ``cryptography``).

``tinyml module keygen -o PREFIX`` writes ``PREFIX.key`` (PKCS#8 private key,
mode 0600) and ``PREFIX.pub`` (SubjectPublicKeyInfo). The firmware embeds
the 32 raw public key bytes (:func:`public_key_c_array`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .format import ModuleError


def _crypto():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ModuleError("crypto", "the 'cryptography' package is needed to sign or verify modules",
                          hint="pip install cryptography") from None
    return serialization, ed25519


def generate_keypair(prefix: Path) -> tuple[Path, Path]:
    """Write PREFIX.key (0600) and PREFIX.pub; refuse to overwrite a key."""
    serialization, ed25519 = _crypto()
    prefix = Path(prefix)
    key_path, pub_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    if key_path.exists():
        raise ModuleError("key", f"{key_path} already exists", hint="Choose another prefix or delete it first")
    try:
        key_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModuleError("key", f"cannot create the folder for the key: {e.strerror}", where=str(key_path.parent),
                          hint="Choose a writable -o PREFIX") from None
    key = ed25519.Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(key_path, 0o600)   # whatever the umask
    pub_path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_path, pub_path


def load_private_key(path: Path):
    serialization, ed25519 = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise ModuleError("key", f"cannot read the private key: {e}", where=str(path)) from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ModuleError("key", "not an Ed25519 private key", where=str(path),
                          hint="Create one with: tinyml module keygen -o PREFIX")
    return key


def load_public_key(path: Path):
    serialization, ed25519 = _crypto()
    try:
        raw = Path(path).read_bytes()
        key = (ed25519.Ed25519PublicKey.from_public_bytes(raw) if len(raw) == 32
               else serialization.load_pem_public_key(raw))
    except (OSError, ValueError, TypeError) as e:
        raise ModuleError("key", f"cannot read the public key: {e}", where=str(path)) from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise ModuleError("key", "not an Ed25519 public key", where=str(path))
    return key


def public_key_bytes(key) -> bytes:
    serialization, _ = _crypto()
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_c_array(key, name: str = "tml_module_pubkey") -> str:
    """A C definition of the 32-byte public key for the firmware."""
    raw = public_key_bytes(key)
    return (f"const unsigned char {name}[32] = {{" + ", ".join(f"0x{b:02x}" for b in raw) + "};\n")

"""Bearer tokens: created once, stored as a hash, each with a project and scopes.

A token is ``tml_`` + 43 random URL-safe characters (256 bits); the
database keeps only its sha256, so a leaked database grants nothing. A
request's ``Authorization: Bearer TOKEN`` resolves to a :class:`Caller`
(project and scopes); a missing or unknown token is 401, a token without
the scope an endpoint needs is 403.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import TinyMLError
from .db import Project, Token

SCOPES = ("compile", "read", "deploy", "admin")
TOKEN_PREFIX = "tml_"


@dataclass(frozen=True)
class Caller:
    project_id: int
    project: str
    scopes: frozenset[str]
    allow_pickle: bool


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def parse_scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in scopes if s not in SCOPES]
    if bad or not scopes:
        raise TinyMLError(f"unknown scope '{(bad or [''])[0]}'", where="--scope",
                          hint="Scopes: " + ", ".join(SCOPES) + " (comma-separated)")
    return scopes


def _new_keypair() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def get_or_create_project(db: Session, name: str) -> Project:
    """The project called ``name``, created with a new Ed25519 signing key if missing."""
    if not name or len(name) > 100 or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise TinyMLError(f"invalid project name '{name}'", where="--project",
                          hint="Use letters, digits, '-', '_' and '.' (at most 100)")
    project = db.scalar(select(Project).where(Project.name == name))
    if project is None:
        private, public = _new_keypair()
        project = Project(name=name, allow_pickle=False, signing_key_pem=private, public_key_pem=public)
        db.add(project)
        db.flush()
    return project


def create_token(db: Session, project: str, scopes: tuple[str, ...]) -> str:
    """A new token for ``project`` (created if missing); the caller shows it once."""
    p = get_or_create_project(db, project)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    db.add(Token(project_id=p.id, token_hash=hash_token(token), scopes=",".join(scopes)))
    db.commit()
    return token


def set_allow_pickle(db: Session, project: str, allow: bool) -> None:
    """Let ``project`` upload pickled models (unpickling runs code from the file: an explicit opt-in)."""
    p = get_or_create_project(db, project)
    p.allow_pickle = allow
    db.commit()


def resolve(db: Session, authorization: str | None) -> Caller | None:
    """The caller of an ``Authorization`` header value, or None when it is not a known token."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    row = db.execute(select(Token, Project).join(Project, Token.project_id == Project.id)
                     .where(Token.token_hash == hash_token(authorization[7:].strip()))).first()
    if row is None:
        return None
    token, project = row
    return Caller(project.id, project.name, frozenset(token.scopes.split(",")), project.allow_pickle)

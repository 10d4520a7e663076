"""FastAPI dependencies: the service object and the authenticated caller."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .auth import Caller
from .core import Service
from .inputs import fail

_bearer = HTTPBearer(auto_error=False, description="A token from `tinyml service token create`")


async def service(request: Request) -> Service:
    return request.app.state.service


def caller(scope: str):
    """A dependency: the caller, who must hold ``scope`` (401 without a token, 403 without the scope)."""

    async def dependency(creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
                         svc: Service = Depends(service)) -> Caller:
        who = svc.caller_of(creds.credentials) if creds is not None else None
        if who is None:
            raise fail(401, "missing or unknown token. Send Authorization: Bearer TOKEN "
                            "(create one with: tinyml service token create --project NAME)")
        if scope not in who.scopes:
            raise fail(403, f"this token lacks the '{scope}' scope (it has {', '.join(sorted(who.scopes))}). "
                            f"Create one with --scope {scope}")
        return who

    return dependency

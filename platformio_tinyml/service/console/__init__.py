"""The web console at ``/``: server-rendered pages over the service's own functions.

Sign-in takes an API token and keeps it in an HttpOnly, SameSite=Strict cookie; every
page resolves it as the API resolves a bearer token (same scopes, same project), so the
console can do nothing the token cannot. Pages call the API's route functions directly
(:mod:`..compilations`, :mod:`..devices`), never the service over HTTP, and show their
one-line errors. Every POST form carries a CSRF token: before sign-in the value of a
random cookie (double submit), after it an HMAC of the session's token, so it needs no
server-side state and works across API processes. Every string that came from a user
(model names, file names, endpoints, logs) is escaped, and the pages' Content-Security-
Policy allows only the console's own script, so injected markup could not run anyway.
The routes are left out of the OpenAPI document: they are pages, not API.

:mod:`.base` holds what every page shares; :mod:`.session_pages`, :mod:`.compilation_pages`,
:mod:`.device_pages` and :mod:`.deployment_pages` the pages; ``static/`` the stylesheet and the script.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import compilation_pages, deployment_pages, device_pages, session_pages

router = APIRouter(include_in_schema=False)
for _pages in (session_pages, compilation_pages, device_pages, deployment_pages):
    router.include_router(_pages.router)

__all__ = ["router"]

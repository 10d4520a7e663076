"""What every console page shares: the session, CSRF, the page frame, error pages."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import inspect
from html import escape

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from ...errors import TinyMLError
from ..auth import Caller

SESSION_COOKIE = "tinyml_session"
PRESESSION_COOKIE = "tinyml_signin"     # the CSRF value of the sign-in form
PAGE_SIZE = 100
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


class Redirect(Exception):
    def __init__(self, url: str):
        self.url = url


# -- sessions and CSRF ---------------------------------------------------------------
def csrf_of(token: str) -> str:
    """The CSRF token of a session: only who holds the session's API token can compute it."""
    return hmac.new(token.encode("utf-8", "surrogateescape"), b"tinyml-console-csrf", hashlib.sha256).hexdigest()


def session(request: Request, scope: str | None = "read") -> tuple[Caller, str]:
    """(the caller, the session's CSRF token); to sign-in when there is no valid session,
    403 when the token lacks ``scope`` (None: any token)."""
    token = request.cookies.get(SESSION_COOKIE)
    who = request.app.state.service.caller_of(token) if token else None
    if who is None:
        raise Redirect("/signin" + ("?ended=1" if token else ""))
    if scope is not None and scope not in who.scopes:
        raise HTTPException(403, f"this token lacks the '{scope}' scope (it has {', '.join(sorted(who.scopes))}). "
                                 f"Sign in with a token made with --scope {scope}")
    return who, csrf_of(token)


def check_csrf(given: str | None, expected: str | None) -> None:
    """403 unless the form's CSRF field equals the expected value (compared in constant time)."""
    if not given or not expected or not hmac.compare_digest(given, expected):
        raise HTTPException(403, "this form did not come from this console (missing or wrong CSRF token). "
                                 "Reload the page and send it again")


def set_cookie(response: Response, request: Request, name: str, value: str) -> None:
    response.set_cookie(name, value, httponly=True, samesite="strict", path="/",
                        secure=request.url.scheme == "https")


# -- pages ---------------------------------------------------------------------------
def render_page(title: str, body: str, who: Caller | None = None, csrf: str = "", status: int = 200) -> HTMLResponse:
    """A whole console page: ``title`` (escaped here) over ``body`` (HTML already), with the
    navigation and sign-out form when someone is signed in."""
    nav = ""
    if who is not None:
        nav = ('<nav aria-label="main"><a href="/compilations">Compilations</a>'
               '<a href="/compilations/new">New compilation</a><a href="/devices">Devices</a>'
               '<a href="/deployments">Deployments</a>'
               f'<span class="who">project {escape(who.project)}</span>'
               f'<form method="post" action="/signout"><input type="hidden" name="csrf" value="{csrf}">'
               '<button type="submit">Sign out</button></form></nav>')
    html = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{escape(title)} - tinyml console</title><link rel="stylesheet" href="/console.css">'
            '<script src="/console.js" defer></script></head>'
            f'<body><header><strong class="brand">tinyml</strong>{nav}</header>'
            f'<main><h1>{escape(title)}</h1>{body}</main></body></html>\n')
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP,
                                                           "Cache-Control": "no-store",
                                                           "X-Content-Type-Options": "nosniff"})


def error_page(status: int, message: str, who: Caller | None = None, csrf: str = "") -> HTMLResponse:
    return render_page("Error" if status != 404 else "Not found",
                       f'<p class="error" role="alert">{escape(message)}</p>'
                       '<p><a href="/compilations">Compilations</a></p>', who, csrf, status)


def _error_answer(e: Exception):
    """What a page handler's exception shows: the sign-in page, or the error's one line on a page."""
    if isinstance(e, Redirect):
        return RedirectResponse(e.url, status_code=303)
    if isinstance(e, HTTPException):
        return error_page(e.status_code, str(e.detail))
    return error_page(getattr(e, "status", 422), " ".join(str(e).split()))


def _guard(handler, answer):
    """``handler`` (plain or async) with its Redirect, HTTPException and TinyMLError turned into ``answer(e)``."""
    if inspect.iscoroutinefunction(handler):
        @functools.wraps(handler)
        async def run_async(*args, **kwargs):
            try:
                return await handler(*args, **kwargs)
            except (Redirect, HTTPException, TinyMLError) as e:
                return answer(e)

        return run_async

    @functools.wraps(handler)
    def run(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except (Redirect, HTTPException, TinyMLError) as e:
            return answer(e)

    return run


def guarded(handler):
    """Run a page handler (plain or async): no session -> sign-in; an API error -> its one line on a page."""
    return _guard(handler, _error_answer)


def _json_answer(e: Exception) -> JSONResponse:
    if isinstance(e, Redirect):
        return JSONResponse({"detail": "not signed in"}, status_code=401)
    if isinstance(e, HTTPException):
        return JSONResponse({"detail": e.detail}, status_code=e.status_code)
    return JSONResponse({"detail": " ".join(str(e).split())}, status_code=getattr(e, "status", 422))


def json_guarded(handler):
    """Run a JSON handler (plain or async) the pages' script fetches: no session -> 401, an API error
    (HTTPException or TinyMLError) -> its status and one line as JSON ``{"detail": ...}``."""
    return _guard(handler, _json_answer)


def age(t: dt.datetime | None, now: dt.datetime) -> str:
    if t is None:
        return "-"
    s = max(int((now - t).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s // size} {unit} ago"
    return f"{s} s ago"



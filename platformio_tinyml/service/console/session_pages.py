"""Sign-in, sign-out, the start page, and the console's stylesheet and script."""

from __future__ import annotations

import secrets
from html import escape
from pathlib import Path

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ...report_html import CSS as REPORT_CSS
from .base import (PRESESSION_COOKIE, SESSION_COOKIE, check_csrf, guarded, render_page, session,
                   set_cookie)

router = APIRouter()
STATIC = Path(__file__).with_name("static")


@router.get("/console.css")
def console_css():
    return Response(REPORT_CSS + (STATIC / "console.css").read_text(), media_type="text/css",
                    headers={"Cache-Control": "max-age=300"})


@router.get("/console.js")
def console_js():
    return Response((STATIC / "console.js").read_text(), media_type="text/javascript",
                    headers={"Cache-Control": "max-age=300"})


@router.get("/")
def home(request: Request):
    token = request.cookies.get(SESSION_COOKIE)
    signed_in = bool(token) and request.app.state.service.caller_of(token) is not None
    return RedirectResponse("/compilations" if signed_in else "/signin", status_code=303)


def _signin_page(request: Request, message: str = "", status: int = 200) -> HTMLResponse:
    value = request.cookies.get(PRESESSION_COOKIE) or secrets.token_urlsafe(24)
    alert = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    answer = render_page("Sign in", alert + '<form method="post" action="/signin" class="card">'
                 f'<input type="hidden" name="csrf" value="{escape(value)}">'
                 '<label for="token">API token</label>'
                 '<input id="token" name="token" type="password" autocomplete="off" required '
                 'placeholder="tml_..." aria-describedby="token-help">'
                 '<p id="token-help" class="note">Make one with <code>tinyml service token create --project '
                 'NAME --scope compile,read,deploy</code>.</p><button type="submit">Sign in</button></form>',
                 status=status)
    set_cookie(answer, request, PRESESSION_COOKIE, value)
    return answer


@router.get("/signin")
def signin_form(request: Request, ended: int = 0):
    return _signin_page(request, "Your session ended: sign in again." if ended else "")


@router.post("/signin")
def signin(request: Request, token: str = Form(""), csrf: str = Form("")):
    try:
        check_csrf(csrf, request.cookies.get(PRESESSION_COOKIE))
    except HTTPException as e:
        return _signin_page(request, str(e.detail), 403)
    token = token.strip()
    if not token or request.app.state.service.caller_of(token) is None:
        return _signin_page(request, "Unknown token: check it, or make a new one with "
                                     "tinyml service token create.", 401)
    response = RedirectResponse("/compilations", status_code=303)
    set_cookie(response, request, SESSION_COOKIE, token)
    response.delete_cookie(PRESESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/signout")
@guarded
def signout(request: Request, csrf: str = Form("")):
    _, expected = session(request, scope=None)
    check_csrf(csrf, expected)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response



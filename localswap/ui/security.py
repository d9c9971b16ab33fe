"""Login on every route: Gradio checks the password on most routes, not all.

Gradio 6 leaves some routes outside its login check (POST /gradio_api/cancel, /stream/...,
/heartbeat/..., /reset, /gradio_api/runs, FastAPI's /openapi.json, ...): they act on a
session or event id, or describe the app. `RequireLogin` refuses every request without a
valid login cookie unless its path is one of `PUBLIC`, so a route added by a future Gradio is
closed until someone decides otherwise. With no password set (a local app) it does nothing.
"""
from __future__ import annotations

import inspect
import json

# What a visitor may fetch before logging in: the login page and the files it needs, none of
# which holds user data. "/" serves only the login form (no components, no config) while
# logged out; the rest ship inside the gradio package or are fixed text. launch() itself
# calls /gradio_api/startup-events, without a cookie, before it returns; after that call the
# route does nothing.
PUBLIC = frozenset({"/", "/login", "/login/", "/theme.css", "/gradio_api/theme.css",
                    "/favicon.ico", "/manifest.json", "/robots.txt", "/pwa_icon",
                    "/gradio_api/startup-events"})
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon/")


def is_public(path: str) -> bool:
    return path in PUBLIC or (path.startswith(PUBLIC_PREFIXES) and ".." not in path)


async def logged_in(app, scope) -> bool:
    """The same test as Gradio's own login check (its `get_current_user`)."""
    from starlette.requests import HTTPConnection, Request
    request = Request(scope) if scope["type"] == "http" else HTTPConnection(scope)
    if getattr(app, "auth_dependency", None) is not None:
        user = app.auth_dependency(request)
        return (await user if inspect.isawaitable(user) else user) is not None
    cookie_id = getattr(app, "cookie_id", "")
    token = (request.cookies.get(f"access-token-{cookie_id}")
             or request.cookies.get(f"access-token-unsecure-{cookie_id}"))
    return token is not None and token in getattr(app, "tokens", {})


class RequireLogin:
    """ASGI middleware: 401 (Gradio's own body) for any non-public path without a login."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        server = scope.get("app")
        if (scope["type"] not in ("http", "websocket") or server is None
                or (getattr(server, "auth", None) is None
                    and getattr(server, "auth_dependency", None) is None)
                or is_public(scope.get("path", "")) or await logged_in(server, scope)):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            return await send({"type": "websocket.close", "code": 1008})
        blocks = getattr(server, "blocks", None)
        body = json.dumps({"detail": {"error": "Not authenticated",
                                      "auth_message": getattr(blocks, "auth_message", None)}})
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body.encode()})

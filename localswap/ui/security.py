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
from pathlib import Path

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


# -- roles: the owner does everything, a viewer (--viewer USER:PASS) only watches ------------
# Every route and every event handler of the app is classified here. A viewer may use the
# VIEWER_ROUTES, and of the routes that run a function (DISPATCH) only the VIEWER_FNS; all
# else answers 403 "not allowed". tests/test_roles.py reads the routes and functions from the
# running app and fails on any that is in neither list, so a new one must be classified.
NOT_ALLOWED = "Not allowed: you are signed in as a viewer, who can watch but not change anything."
DISPATCH = frozenset({
    ("POST", "/gradio_api/queue/join"), ("POST", "/gradio_api/api/{api_name}"),
    ("POST", "/gradio_api/api/{api_name}/"), ("POST", "/gradio_api/call/v2/{api_name}"),
    ("POST", "/gradio_api/call/v2/{api_name}/"), ("POST", "/gradio_api/call/{api_name}"),
    ("POST", "/gradio_api/call/{api_name}/"), ("POST", "/gradio_api/run/{api_name}"),
    ("POST", "/gradio_api/run/{api_name}/")})
# Reads, the login, and session housekeeping (cancel/reset/close act on the caller's own
# events). Writes that a viewer is refused: upload, component_server, process_recording,
# stream/{event_id} (streamed input), run-history/connect and the vibe-edit routes.
VIEWER_ROUTES = frozenset({
    *(("GET", p) for p in (
        "/", "/assets/{path:path}", "/config", "/config/", "/favicon.ico",
        "/gradio_api/app_id", "/gradio_api/app_id/",
        "/gradio_api/call/v2/{api_name}/{event_id}", "/gradio_api/call/{api_name}/{event_id}",
        "/gradio_api/custom_component/{id}/{environment}/{type}/{file_name}",
        "/gradio_api/deep_link", "/gradio_api/dev/reload", "/gradio_api/file/{path:path}",
        "/gradio_api/file={path_or_url:path}", "/gradio_api/heartbeat/{session_hash}",
        "/gradio_api/info", "/gradio_api/info/", "/gradio_api/login_check",
        "/gradio_api/login_check/", "/gradio_api/openapi.json",
        "/gradio_api/proxy={url_path:path}", "/gradio_api/queue/data",
        "/gradio_api/queue/status", "/gradio_api/run-history/buckets",
        "/gradio_api/run-history/records",
        "/gradio_api/run-history/records/{endpoint}/{record_id}/assets/{asset_id}",
        "/gradio_api/runs", "/gradio_api/runs/", "/gradio_api/startup-events",
        "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist-file",
        "/gradio_api/stream/{session_hash}/{run}/{component_id}/playlist.m3u8",
        "/gradio_api/stream/{session_hash}/{run}/{component_id}/{segment_id}.{ext}",
        "/gradio_api/theme.css", "/gradio_api/token", "/gradio_api/token/",
        "/gradio_api/upload_progress", "/gradio_api/user", "/gradio_api/user/",
        "/gradio_api/vibe-code", "/gradio_api/vibe-code/", "/logout", "/manifest.json",
        "/monitoring", "/monitoring/summary", "/monitoring/{key}", "/openapi.json",
        "/pwa_icon", "/pwa_icon/{size}", "/robots.txt", "/static/{path:path}",
        "/svelte/{path:path}", "/theme.css")),
    ("HEAD", "/"), ("HEAD", "/gradio_api/file={path_or_url:path}"),
    ("HEAD", "/gradio_api/proxy={url_path:path}"), ("HEAD", "/openapi.json"),
    ("POST", "/login"), ("POST", "/login/"), ("POST", "/gradio_api/cancel"),
    ("POST", "/gradio_api/reset"), ("POST", "/gradio_api/reset/"),
    ("POST", "/gradio_api/stream/{event_id}/close"), *DISPATCH})
OWNER_ROUTES = frozenset({
    ("POST", p) for p in (
        "/gradio_api/upload", "/gradio_api/component_server", "/gradio_api/component_server/",
        "/gradio_api/process_recording", "/gradio_api/run-history/connect",
        "/gradio_api/stream/{event_id}", "/gradio_api/undo-vibe-edit",
        "/gradio_api/undo-vibe-edit/", "/gradio_api/vibe-code", "/gradio_api/vibe-code/",
        "/gradio_api/vibe-edit", "/gradio_api/vibe-edit/", "/gradio_api/vibe-starter-queries",
        "/gradio_api/vibe-starter-queries/")})
# Functions by "module:qualname" (lambdas of one function share a name: classify them
# together, so a state-changing handler must never be a lambda next to read-only ones).
VIEWER_FNS = frozenset({
    "localswap.ui.api:register.<locals>.job", "localswap.ui.api:register.<locals>.jobs",
    "localswap.ui.api:register.<locals>.result",
    "localswap.ui.api:register_preview.<locals>.preview_frame",
    "localswap.ui.app:build_app.<locals>.on_load", "localswap.ui.app:build_app.<locals>.<lambda>",
    "localswap.ui.job_view:_listen.<locals>.tick", "localswap.ui.job_view:_listen.<locals>.<lambda>",
    "localswap.ui.preview_panel:listen.<locals>.show",
    "localswap.ui.models_panel:render.<locals>.load",
    "localswap.ui.models_panel:render.<locals>.clicked",   # a library tile chooses a model
    "localswap.ui.models_panel:_wire_fit.<locals>.look",   # one frame and the fit, read only
    "localswap.ui.people:wire_picker.<locals>.picked",     # a thumbnail click sets "Who"
    "localswap.ui.model_export:_forget",     # another model chosen: the old export's link goes
    "localswap.ui.job_view:_listen.<locals>.show_grid",     # a timelapse tile's whole grid
    "localswap.ui.system_panel:render.<locals>.<lambda>",    # the System report's refresh
    "localswap.ui.models_panel:render.<locals>.<lambda>",   # describe, people of a video,
})                                                          # "Keep it" (hides the confirmation)
OWNER_FNS = frozenset({
    "localswap.ui.api:register.<locals>.swap", "localswap.ui.api:register.<locals>.quick_swap",
    "localswap.ui.api:register.<locals>.fit", "localswap.ui.api:register.<locals>.adapt",
    "localswap.ui.api:register.<locals>.cancel", "localswap.ui.api:register.<locals>.convert_now",
    "localswap.ui.api:register.<locals>.continue_training",
    "localswap.ui.api:register.<locals>.resume",
    "localswap.ui.job_view:_listen.<locals>.act.<locals>.handler",
    "localswap.ui.preview_panel:listen.<locals>.do_render",
    "localswap.ui.live_panel:render.<locals>.swap_frame",   # streamed input: owner only
    "localswap.ui.live_panel:render.<locals>.record",       # records the webcam, adapts
    "localswap.ui.job_files:timelapse_video",     # writes the timelapse to outputs/
    "localswap.ui.job_files:compare_clip",        # writes the before/after clip to outputs/
    "localswap.ui.models_panel:render.<locals>.guarded.<locals>.handler",
    "localswap.ui.models_panel:render.<locals>.ask_delete",   # Delete…: its confirmation
    "localswap.ui.model_export:_exporter.<locals>.export",
    # New swap: a viewer never starts one, so its upload checks and estimates are the owner's.
    "localswap.ui.new_swap:render.<locals>.check",
    "localswap.ui.new_swap:render.<locals>.show_estimate",
    "localswap.ui.new_swap:render.<locals>.<lambda>",
    "localswap.ui.new_swap:render.<locals>.on_start",
})


# The owner's functions that change something: each call is audited with the user name.
AUDITED = OWNER_FNS - {"localswap.ui.new_swap:render.<locals>.check",
                       "localswap.ui.new_swap:render.<locals>.show_estimate",
                       "localswap.ui.new_swap:render.<locals>.<lambda>",
                       "localswap.ui.models_panel:render.<locals>.ask_delete"}


def fn_key(fn) -> str:
    import functools
    while isinstance(fn, functools.partial):
        fn = fn.func
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"


def _template_regex(template: str):
    import re
    out, pos = "", 0
    for m in re.finditer(r"\{(\w+)(:path)?\}", template):
        out += re.escape(template[pos:m.start()]) + (".*" if m.group(2) else "[^/]*")
        pos = m.end()
    return re.compile(out + re.escape(template[pos:]) + r"\Z")


_PATTERNS = [(m, t, _template_regex(t)) for m, t in sorted(VIEWER_ROUTES)]


def viewer_route(method: str, path: str) -> tuple[str, str] | None:
    """The VIEWER_ROUTES entry a request matches, or None."""
    method = "GET" if method == "HEAD" and ("HEAD", path) not in VIEWER_ROUTES else method
    for m, t, rx in _PATTERNS:
        if m == method and rx.match(path):
            return m, t
    return None


async def user_of(app, scope) -> str | None:
    """The signed-in user name (Gradio's token table), None when nobody is."""
    from starlette.requests import Request
    if scope["type"] != "http":
        return None
    cookies = Request(scope).cookies
    cookie_id = getattr(app, "cookie_id", "")
    token = (cookies.get(f"access-token-{cookie_id}")
             or cookies.get(f"access-token-unsecure-{cookie_id}"))
    return getattr(app, "tokens", {}).get(token) if token else None


def dispatched_fn(blocks, path: str, body: dict):
    """The BlockFunction a dispatch request would run (None if none)."""
    fns = getattr(blocks, "fns", {}) or {}
    if path.rstrip("/").endswith("/queue/join"):
        return fns.get(body.get("fn_index")) if isinstance(body, dict) else None
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return next((f for f in fns.values() if f.api_name == name), None)


# What a call does, in words: the API's functions by name; an event handler of the page by
# the button or field that fired it (its label), so no function name reaches the log.
API_ACTIONS = {"swap": "start a swap", "quick_swap": "start a quick swap",
               "adapt": "adapt a model to a new person", "fit": "check a model's fit",
               "cancel": "cancel a job", "convert_now": "render a job now",
               "continue_training": "continue a job's training", "resume": "resume a job"}
ROUTE_ACTIONS = {"/gradio_api/upload": "upload a file",
                 "/gradio_api/stream/{event_id}": "stream the webcam",
                 "/gradio_api/process_recording": "send a recording",
                 "/gradio_api/component_server": "call a page component",
                 "/gradio_api/component_server/": "call a page component"}


def action_words(blocks, fn) -> str:
    """What `fn` (a BlockFunction) does, in words for a person."""
    api = getattr(fn, "api_name", None)
    if api in API_ACTIONS:
        return API_ACTIONS[api]
    for target in getattr(fn, "targets", None) or []:
        block_id, event = (target[0], target[1]) if isinstance(target, (list, tuple)) \
            else (target, "")
        block = (getattr(blocks, "blocks", {}) or {}).get(block_id)
        if block is None:
            continue
        label = getattr(block, "label", None) or getattr(block, "value", None)
        if isinstance(label, str) and label.strip():
            verb = {"click": "press", "change": "change", "upload": "upload",
                    "select": "choose in", "stream": "stream"}.get(event, event or "use")
            return f'{verb} "{label.strip()}"'
    return "act on the page"


def touched(ctx, data) -> str:
    """The jobs, models and files a call's inputs name, e.g. 'job #3, model tiny_model'."""
    found: list[str] = []
    models = set()
    if ctx is not None:
        try:
            models = set(ctx.workspace.names("models"))
        except Exception:  # noqa: BLE001
            models = set()
    for value in data if isinstance(data, list) else []:
        if isinstance(value, dict) and (value.get("orig_name") or value.get("path")):
            found.append(f"file {Path(str(value.get('orig_name') or value['path'])).name}")
        elif isinstance(value, str) and value in models:
            found.append(f"model {value}")
        elif isinstance(value, (int, str)) and str(value).isdigit() and ctx is not None \
                and ctx.store.get(int(value)) is not None:
            found.append(f"job #{int(value)}")
    return ", ".join(dict.fromkeys(found))


def audit(blocks, user: str, role: str, action: str, what: str, outcome: str,
          job: int | None = None) -> None:
    """One line in workspace/audit.log (and the job's log when a job was named): time, user,
    role, the action in words, what it touched, and the outcome."""
    import time
    ctx = getattr(blocks, "localswap", None)
    line = (f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {user} ({role})  {action}"
            + (f"  [{what}]" if what else "") + f"  {outcome}")
    print(f"[audit] {line}", flush=True)
    if ctx is None:
        return
    try:
        with open(ctx.workspace.root / "audit.log", "a") as fh:
            fh.write(line + "\n")
        if job is not None:
            ctx.store.add_events(job, [("log", {"text": f"{user}: {action} ({outcome})",
                                                "stage": "user"})])
    except Exception:  # noqa: BLE001  (an audit write must not break the action)
        pass


def _audit_call(blocks, user: str, role: str, fn, data, outcome: str) -> None:
    ctx = getattr(blocks, "localswap", None)
    what = touched(ctx, data)
    first = data[0] if isinstance(data, list) and data else None
    job = int(first) if isinstance(first, (int, str)) and str(first).isdigit() and \
        ctx is not None and ctx.store.get(int(first)) is not None else None
    audit(blocks, user, role, action_words(blocks, fn), what, outcome, job)


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message, "error": message})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body.encode()})


class RequireRole:
    """ASGI middleware after RequireLogin: viewers (context.viewers) get only the routes and
    functions classified as reads; every call of an owner function is audited by user."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        server = scope.get("app")
        blocks = getattr(server, "blocks", None)
        if scope["type"] != "http" or blocks is None:
            return await self.app(scope, receive, send)
        method, path = scope.get("method", "GET"), scope.get("path", "")
        user = await user_of(server, scope)
        viewers = getattr(getattr(blocks, "localswap", None), "viewers", ()) or ()
        viewer = user is not None and user in viewers
        role = "viewer" if viewer else "owner"
        route = viewer_route(method, path)
        if viewer and route is None:
            words = next((w for t, w in ROUTE_ACTIONS.items()
                          if _template_regex(t).match(path)), f"{method} {path}")
            audit(blocks, user, role, words, "", "refused: a viewer cannot change anything")
            return await _refuse(send, 403, NOT_ALLOWED)
        if route not in DISPATCH:
            return await self.app(scope, receive, send)
        chunks = []
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            chunks.append(msg.get("body", b""))
            if not msg.get("more_body"):
                break
        raw = b"".join(chunks)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        fn = dispatched_fn(blocks, path, body)
        key = fn_key(getattr(fn, "fn", None)) if fn is not None else None
        data = body.get("data") if isinstance(body, dict) else None
        if viewer and key not in VIEWER_FNS:
            if fn is not None:
                _audit_call(blocks, user, role, fn, data,
                            "refused: a viewer cannot change anything")
            return await _refuse(send, 403, NOT_ALLOWED)
        if fn is not None and key in AUDITED:
            _audit_call(blocks, user or "local", role, fn, data, "allowed")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()
        return await self.app(scope, replay, send)

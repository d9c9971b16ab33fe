"""Security through the real HTTP server: the password guards every route, and the file routes
serve the workspace's rendered outputs (and Gradio's cache of returned files), nothing else.

The route list comes from the running app itself, so a route a new Gradio adds is probed too.
Requests that must reach the server verbatim (`../` segments, which httpx would normalise
away) go through httpcore, httpx's own transport.
"""
from __future__ import annotations

import json
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpcore
import httpx
import numpy as np
import pytest
from gradio.utils import get_upload_folder

from localswap.bench import samples as mb
from ui_helpers import ROOT, InProcessApp, LaunchedApp

USER, PASSWORD = "user", "pass"
MODEL = "secretmodel7"        # user data: must never reach a visitor who is not logged in
TITLE = "secretjob7"
OUTPUT = "swap-1-4.mp4"

# What a logged-out visitor may fetch, and why (see localswap/ui/security.py): the login page
# (while logged out it holds the form only: no components, no config, the API's schema from
# the code), the login form's POST, and files of the gradio package or fixed text.
PUBLIC = {
    ("GET", "/"), ("HEAD", "/"), ("POST", "/login"), ("POST", "/login/"),
    ("GET", "/theme.css"), ("GET", "/gradio_api/theme.css"), ("GET", "/favicon.ico"),
    ("GET", "/manifest.json"), ("GET", "/robots.txt"), ("GET", "/pwa_icon"),
    ("GET", "/pwa_icon/{size}"), ("GET", "/assets/{path:path}"),
    ("GET", "/static/{path:path}"), ("GET", "/svelte/{path:path}"),
    # launch() calls it, without a cookie, before the app serves anyone; then it does nothing.
    ("GET", "/gradio_api/startup-events"),
}


# -- a workspace with one of each kind of user file ---------------------------------------
def make_workspace(root: Path) -> dict[str, Path]:
    """Outputs, uploads, a faceset, a model, a finished job in the db, and symlinks placed
    in outputs/ that point outside it. Returns the paths by role."""
    from safetensors.numpy import save_file

    from localswap.jobs.store import DONE, JobStore
    from localswap.workspace import Workspace
    ws = Workspace(root)
    out = ws.root / "outputs" / OUTPUT
    frames = mb.moving_frames(mb.astronaut(), mb.FACE_CENTRES["astronaut"], 6, size=(160, 120))
    mb.encode(out, frames)
    upload = ws.root / "uploads" / "0123456789abcdef.mp4"
    shutil.copy(out, upload)
    faceset = ws.root / "facesets" / "person"
    faceset.mkdir()
    import cv2
    png = faceset / "000001.png"
    cv2.imwrite(str(png), np.full((64, 64, 3), 127, np.uint8))
    (faceset / "faceset.json").write_text(json.dumps({"faces": [{"file": png.name}]}))
    model = ws.root / "models" / MODEL
    model.mkdir()
    save_file({"w": np.arange(16, dtype=np.float32)}, str(model / "model.safetensors"))
    (model / "manifest.json").write_text(json.dumps({"name": MODEL}))
    store = JobStore(ws.db_path)
    job = store.add("swap", {"model": MODEL}, title=TITLE)
    store.update(job, status=DONE, stage="done", progress=1.0,
                 result={"output": f"outputs/{OUTPUT}"})
    store.close()
    links = {"link_passwd": "/etc/passwd", "link_db": ws.db_path,
             "link_model": model / "model.safetensors", "link_png": png}
    paths = {"output": out, "upload": upload, "png": png, "faceset_json": faceset / "faceset.json",
             "model": model / "model.safetensors", "manifest": model / "manifest.json",
             "db": ws.db_path, "root": ws.root, "job": job}
    for name, target in links.items():
        link = ws.root / "outputs" / f"{name}.mp4"
        link.symlink_to(target)
        paths[name] = link
    (ws.root / "outputs" / "link_uploads").symlink_to(ws.root / "uploads", True)
    paths["link_dir"] = ws.root / "outputs" / "link_uploads" / upload.name
    return paths


# -- servers ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def authed(tmp_path_factory):
    """`launch.py --auth user:pass` over a workspace holding user data."""
    paths = make_workspace(tmp_path_factory.mktemp("security") / "ws")
    app = LaunchedApp("--auth", f"{USER}:{PASSWORD}", workspace=paths["root"])
    yield app, paths
    app.close()


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """The app as a local user runs it (no password), in this process: its routes are the
    ones enumerated below."""
    paths = make_workspace(tmp_path_factory.mktemp("security_local") / "ws")
    app = InProcessApp(paths["root"])
    yield app, paths
    app.close()


@contextmanager
def login(url: str):
    """An httpx client holding the session cookie of a real login."""
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("login", data={"username": USER, "password": PASSWORD})
        assert r.status_code == 200, r.text
        yield c


def cookie_header(client: httpx.Client) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def raw_get(url: str, target: str, cookie: str = "") -> httpcore.Response:
    """GET with the request target sent exactly as given (no dot-segment removal)."""
    port = httpx.URL(url).port
    headers = [(b"Host", f"127.0.0.1:{port}".encode())]
    if cookie:
        headers.append((b"Cookie", cookie.encode()))
    with httpcore.ConnectionPool() as pool:
        r = pool.request("GET", httpcore.URL(scheme=b"http", host=b"127.0.0.1", port=port,
                                             target=target.encode()),
                         headers=headers, extensions={"timeout": {"read": 30}})
        r.read()
        return r


def sse(body: str, event: str) -> str:
    """The data of the first `event` in a server-sent-events body."""
    m = re.search(rf"^event: {event}\ndata: (.*)$", body, re.M)
    assert m, body
    return m.group(1)


def file_url(path: Path | str) -> str:
    return "/gradio_api/file=" + quote(str(path), safe="/")


# -- the routes of the running app ---------------------------------------------------------
def app_routes(server_app) -> list[tuple[str, str]]:
    """(method, path template) for every route of a running Gradio app, mounts and included
    routers followed."""
    found = []

    def walk(routes, prefix=""):
        for r in routes:
            if hasattr(r, "original_router"):             # FastAPI's included router
                walk(r.original_router.routes, prefix)
            elif type(r).__name__ == "Mount":
                walk(r.routes, prefix + r.path)
            else:
                for m in sorted(getattr(r, "methods", None) or {"WEBSOCKET"}):
                    found.append((m, prefix + r.path))
    walk(server_app.routes)
    return sorted(set(found))


def fill(template: str, output: Path) -> str:
    """A concrete path for a route template: a real output for the file routes."""
    def value(m):
        name, conv = m.group(1), m.group(2) or ""
        if name in ("path_or_url", "path") and template.startswith("/gradio_api/file"):
            return quote(str(output), safe="/")
        if name == "url_path":
            return "http://127.0.0.1:1/x"
        if conv == ":int" or name in ("size", "component_id"):
            return "1"
        return "x"
    return re.sub(r"\{(\w+)(:\w+)?\}", value, template)


def probe(c: httpx.Client, method: str, url: str, **kwargs) -> tuple[int, str, str]:
    """(status, Location, start of the body): an event stream that the server would hold
    open (/heartbeat, /queue/data) is read up to its first message only."""
    with c.stream(method, url, **kwargs) as r:
        body = b""
        for chunk in r.iter_bytes():
            body += chunk
            if "event-stream" in r.headers.get("content-type", "") or len(body) > 1 << 20:
                break
        return r.status_code, r.headers.get("location", ""), body.decode(errors="replace")


def refused(status: int, location: str) -> bool:
    return status in (401, 403) or (300 <= status < 400 and "login" in location)


def test_every_route_needs_the_login(authed, local):
    app, paths = authed
    routes = app_routes(local[0].app.server_app)
    templates = {p for _, p in routes}
    # The walk saw Gradio's API router, not only the top-level routes.
    for must in ("/gradio_api/file={path_or_url:path}", "/gradio_api/upload",
                 "/gradio_api/queue/join", "/gradio_api/call/{api_name}", "/config"):
        assert must in templates, must
    user_data = [MODEL, TITLE, OUTPUT, str(paths["root"])]
    answered = set()
    with httpx.Client(base_url=app.url.rstrip("/"), timeout=30) as c:
        for method, template in routes:
            if method == "WEBSOCKET":
                continue
            status, location, body = probe(c, method, fill(template, paths["output"]))
            if refused(status, location):
                continue
            answered.add((method, template))
            for s in user_data:          # a public route shows no user data
                assert s not in body, (method, template, s)
    assert answered <= PUBLIC, sorted(answered - PUBLIC)
    assert ("GET", "/") in answered and ("POST", "/login") in answered


def test_logged_out_requests_are_refused_and_do_nothing(authed, local):
    app, paths = authed
    info = httpx.get(local[0].url + "gradio_api/info", timeout=30).json()
    apis = [name.lstrip("/") for name in info["named_endpoints"]]
    assert {"swap", "quick_swap", "result", "cancel", "job", "resume",
            "continue_training"} <= set(apis)
    out, job, session = paths["output"], paths["job"], "abcdefghij"
    with httpx.Client(base_url=app.url, timeout=30) as c:
        page = c.get("")
        assert page.status_code == 200
        config = json.loads(re.search(r"window.gradio_config = (.*?);</script>",
                                      page.text, re.S).group(1))
        assert config["auth_required"] is True and config["components"] == []
        for s in (MODEL, TITLE, OUTPUT):
            assert s not in page.text, s
        # The login page's own script loads without a login (a file of the gradio package).
        script = re.search(r'src="\./(assets/[^"]+\.js)"', page.text).group(1)
        assert c.get(script).status_code == 200
        tries = {
            "config": ("GET", "config", {}),
            "info": ("GET", "gradio_api/info", {}),
            "file": ("GET", file_url(out).lstrip("/"), {}),
            "file HEAD": ("HEAD", file_url(out).lstrip("/"), {}),
            "file (old form)": ("GET", "gradio_api/file/" + str(out), {}),
            "upload": ("POST", "gradio_api/upload",
                       {"files": {"files": ("a.mp4", out.read_bytes())}}),
            "queue/join": ("POST", "gradio_api/queue/join",
                           {"json": {"data": [job], "fn_index": 0, "session_hash": session}}),
            "queue/data": ("GET", "gradio_api/queue/data", {"params": {"session_hash": session}}),
            "run/predict": ("POST", "gradio_api/run/predict", {"json": {"data": []}}),
            "cancel an event": ("POST", "gradio_api/cancel", {"json": {
                "session_hash": session, "fn_index": 0, "event_id": "x"}}),
            "heartbeat": ("GET", f"gradio_api/heartbeat/{session}", {}),
            "stream": ("POST", "gradio_api/stream/x", {"json": {"data": []}}),
            "openapi": ("GET", "openapi.json", {}),
            "run history page": ("GET", "gradio_api/runs", {}),
        }
        for api in apis:
            tries[f"call/{api}"] = ("POST", f"gradio_api/call/{api}", {"json": {"data": [job]}})
        for name, (method, url, kwargs) in tries.items():
            status, location, body = probe(c, method, url, **kwargs)
            assert refused(status, location), (name, status, body[:200])
            assert MODEL not in body and TITLE not in body, name
    # The refused calls changed nothing: one job, still done.
    with login(app.url) as lc:
        event = lc.post("gradio_api/call/jobs", json={"data": []}).json()
        jobs = json.loads(sse(lc.get(f"gradio_api/call/jobs/{event['event_id']}").text,
                              "complete"))[0]
    assert [(j["id"], j["title"], j["status"]) for j in jobs] == [(job, TITLE, "done")]


def test_logged_in_download_of_an_output_and_of_a_result(authed):
    app, paths = authed
    data = paths["output"].read_bytes()
    anon = httpx.get(app.url.rstrip("/") + file_url(paths["output"]), timeout=30)
    assert anon.status_code == 401
    with login(app.url) as c:
        for url in (file_url(paths["output"]), "/gradio_api/file/" + str(paths["output"])):
            r = c.get(url.lstrip("/"))
            assert r.status_code == 200 and r.content == data, url
        # The API's download: /result hands out a URL into Gradio's cache of returned files.
        event = c.post("gradio_api/call/result", json={"data": [paths["job"]]}).json()
        body = c.get(f"gradio_api/call/result/{event['event_id']}").text
        result = json.loads(sse(body, "complete"))[0]
        url = httpx.URL(result["url"])
        got = c.get(url.raw_path.decode())
        assert got.status_code == 200 and got.content == data
    assert httpx.get(str(app.url).rstrip("/") + url.raw_path.decode(),
                     timeout=30).status_code == 401
    assert result["path"].startswith(get_upload_folder())   # Gradio's cache, not outputs/


def test_gradio_client_with_the_password(authed, tmp_path):
    """Scripts log in with `auth=` and use the API as before."""
    from gradio_client import Client
    app, paths = authed
    client = Client(app.url, auth=(USER, PASSWORD), verbose=False,
                    download_files=str(tmp_path))
    assert client.predict(paths["job"], api_name="/job")["status"] == "done"
    got = Path(client.predict(paths["job"], api_name="/result"))
    assert got.read_bytes() == paths["output"].read_bytes()
    with pytest.raises(ValueError, match="Could not login"):
        Client(app.url, auth=(USER, "wrong"), verbose=False)


def forbidden_targets(paths: dict, port: int) -> dict[str, str]:
    """Request targets that must not serve a file (raw: sent exactly as written)."""
    outputs = str(paths["root"] / "outputs")
    up = "../" * 12
    enc = "%2e%2e%2f" * 12
    targets = {
        "relative ../ to /etc/passwd": "/gradio_api/file=" + up + "etc/passwd",
        "../ after the outputs folder": f"/gradio_api/file={outputs}/../localswap.db",
        "../ after outputs to /etc": f"/gradio_api/file={outputs}/{up}etc/passwd",
        "%2e%2e%2f to /etc/passwd": "/gradio_api/file=" + enc + "etc%2fpasswd",
        "%2e%2e%2f after outputs": f"/gradio_api/file={outputs}%2f%2e%2e%2flocalswap.db",
        "..%2f after outputs": f"/gradio_api/file={outputs}/..%2flocalswap.db",
        "double-encoded after outputs":
            f"/gradio_api/file={outputs}/%252e%252e%252flocalswap.db",
        "double-encoded to /etc": "/gradio_api/file=" + "%252e%252e%252f" * 12 + "etc/passwd",
        "backslashes": "/gradio_api/file=" + "..\\" * 12 + "etc\\passwd",
        "old route ../": "/gradio_api/file/" + up + "etc/passwd",
        "/etc/passwd": "/gradio_api/file=/etc/passwd",
        "//etc/passwd": "/gradio_api/file=//etc/passwd",
        "file:// URL": "/gradio_api/file=file:///etc/passwd",
        "the app's own file (cwd)": file_url(ROOT / "launch.py"),
        "a relative path (cwd)": "/gradio_api/file=launch.py",
        "the workspace folder": file_url(paths["root"]),
        "the outputs folder": file_url(outputs),
        "an http URL to this server": "/gradio_api/file=" + quote(
            f"http://127.0.0.1:{port}{file_url(paths['db'])}", safe=":/"),
        "proxy to this server": "/gradio_api/proxy=" + quote(
            f"http://127.0.0.1:{port}{file_url('/etc/passwd')}", safe=":/"),
        "assets ../": "/assets/" + up + "etc/passwd",
        "static %2e%2e": "/static/" + enc + "etc/passwd",
        "svelte ../": "/svelte/" + up + "etc/passwd",
    }
    for name in ("db", "upload", "model", "manifest", "png", "faceset_json", "link_passwd",
                 "link_db", "link_model", "link_png", "link_dir"):
        targets[name] = file_url(paths[name])
    targets["db-wal"] = file_url(str(paths["db"]) + "-wal")
    targets["db uppercase"] = file_url(str(paths["db"]).upper())
    return targets


# What the forbidden files hold (an error message may echo the requested path, never these).
SECRET_BYTES = (b"root:", b"SQLite format 3", b'"w"', b"\x89PNG", b"ftyp", b"def main",
                b'"faces"', b'{"name": "' + MODEL.encode())


def check_forbidden(url: str, paths: dict, cookie: str = "") -> None:
    port = httpx.URL(url).port
    served = []
    for name, target in forbidden_targets(paths, port).items():
        r = raw_get(url, target, cookie)
        leaked = [s for s in SECRET_BYTES if s in r.content]
        if r.status not in (400, 403, 404) or leaked:
            served.append((name, target, r.status, leaked, r.content[:120]))
    assert not served, served
    # The same session is served a real output.
    ok = raw_get(url, file_url(paths["output"]), cookie)
    assert ok.status == 200 and ok.content == paths["output"].read_bytes()


def test_file_routes_serve_only_outputs_when_logged_in(authed):
    app, paths = authed
    with login(app.url) as c:
        check_forbidden(app.url, paths, cookie_header(c))


def test_file_routes_serve_only_outputs_on_a_local_app(local):
    app, paths = local
    check_forbidden(app.url, paths)


@pytest.fixture
def inside_upload_folder(tmp_path_factory):
    """A local app whose workspace lies inside Gradio's upload folder (GRADIO_TEMP_DIR), where
    Gradio serves every file it did not block: only blocked_paths guard the workspace.
    Function scope: the variable must not outlive this test, or a test of this module that
    runs after it in the same worker (pytest-xdist) sees another upload folder."""
    import os
    temp = tmp_path_factory.mktemp("gradio_temp")
    old = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(temp)
    try:
        paths = make_workspace(temp / "ws")
        app = InProcessApp(paths["root"])
        yield app, paths
        app.close()
    finally:
        if old is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old


def test_blocked_paths_hold_inside_gradios_upload_folder(inside_upload_folder):
    app, paths = inside_upload_folder
    assert Path(str(paths["db"]) + "-wal").exists()     # the runner has the db open
    check_forbidden(app.url, paths)

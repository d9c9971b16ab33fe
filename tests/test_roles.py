"""Roles: the owner does everything; a viewer (`--viewer`) sees everything and changes nothing,
enforced on the server for every route and function, which are read from the running app (a
new one fails here until it is classified in localswap/ui/security.py). Also: the share link's
expiry (`--share-hours`)."""
from __future__ import annotations

import re
import time
from pathlib import Path
from contextlib import contextmanager

import httpx
import pytest

from ui_helpers import free_port, install_tiny_model, wait_for
from test_web_security import app_routes, fill

OWNER, VIEWER = ("owner", "opass"), ("watcher", "vpass")


@pytest.fixture(scope="module")
def served(tmp_path_factory, faceset_a, faceset_b, video_a):
    """The app in this process with an owner and a viewer login, a model and a finished job."""
    from localswap.jobs.runner import Runner
    from localswap.jobs.store import DONE
    from localswap.ui.app import build_app, launch_kwargs
    from localswap.workspace import Workspace
    ws = Workspace(tmp_path_factory.mktemp("roles") / "ws")
    install_tiny_model(ws.root / "models", tmp_path_factory.getbasetemp(), faceset_a, faceset_b)
    import shutil
    shutil.copy(video_a, ws.root / "uploads" / "x.mp4")
    runner = Runner(ws).start()
    job = runner.store.add("quick_swap", {"model": "tiny_model", "target": "uploads/x.mp4"},
                           title="finished job")
    runner.store.update(job, status=DONE, stage="done", progress=1.0)
    app = build_app(ws, runner)
    app.localswap.viewers = frozenset({VIEWER[0]})
    port = free_port()
    app.queue(default_concurrency_limit=4)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
               ssr_mode=False, auth=[OWNER, VIEWER], **launch_kwargs(ws))
    yield app, f"http://127.0.0.1:{port}/", ws, job
    runner.stop()
    app.close()


@contextmanager
def login(url: str, who):
    with httpx.Client(base_url=url, timeout=30) as c:
        r = c.post("login", data={"username": who[0], "password": who[1]})
        assert r.status_code == 200
        yield c


def test_every_route_and_function_is_classified(served):
    from localswap.ui import security
    app = served[0]
    routes = set(app_routes(app.server_app))
    unknown = routes - security.VIEWER_ROUTES - security.OWNER_ROUTES
    assert not unknown, f"classify these routes in localswap/ui/security.py: {sorted(unknown)}"
    keys = {security.fn_key(f.fn) for f in app.fns.values()}
    unknown = keys - security.VIEWER_FNS - security.OWNER_FNS
    assert not unknown, f"classify these functions in localswap/ui/security.py: {unknown}"
    assert not security.VIEWER_FNS & security.OWNER_FNS


def test_viewer_is_refused_every_state_changing_route_and_call(served):
    from localswap.ui import security
    app, url, ws, job = served
    routes = set(app_routes(app.server_app))
    owner_fns = {i: f for i, f in app.fns.items()
                 if security.fn_key(f.fn) in security.OWNER_FNS}
    assert len(owner_fns) >= 10
    with login(url, VIEWER) as c:
        for method, template in sorted(routes & security.OWNER_ROUTES):
            r = c.request(method, fill(template, ws.root), json={})
            assert r.status_code == 403 and "Not allowed" in r.text, (method, template)
        for index, f in owner_fns.items():
            r = c.post("gradio_api/queue/join", json={"fn_index": index, "data": [job],
                                                      "session_hash": "viewer1"})
            assert r.status_code == 403 and "Not allowed" in r.text, f.api_name
            for route in ("call", "run", "api", "call/v2"):
                r = c.post(f"gradio_api/{route}/{f.api_name}", json={"data": [job]})
                assert r.status_code == 403 and "Not allowed" in r.text, (route, f.api_name)
        assert c.get("config").status_code == 200          # reads still work
    # Nothing changed: the job is still done, the model still there.
    assert app.localswap.store.get(job).status == "done"
    assert (ws.root / "models" / "tiny_model" / "manifest.json").is_file()


def test_viewer_through_gradio_client_reads_but_cannot_act(served):
    from gradio_client import Client
    app, url, ws, job = served
    c = Client(url, auth=VIEWER, verbose=False,
               download_files=str(ws.root.parent / "viewer-downloads"))
    assert c.predict(job, api_name="/job")["status"] == "done"
    assert any(j["id"] == job for j in c.predict(api_name="/jobs"))
    frame = c.predict(str(job), 3, {"color": "none"}, None, api_name="/preview_frame")
    assert frame.endswith(".png")
    api = c.view_api(print_info=False, return_format="dict")["named_endpoints"]
    reads = {"/job", "/jobs", "/result", "/preview_frame"}
    acts = set(api) - reads
    assert {"/swap", "/quick_swap", "/cancel", "/resume"} <= acts
    for name in sorted(acts):
        args = [job] + [None] * (len(api[name]["parameters"]) - 1)
        with pytest.raises(Exception, match="(?i)not allowed|403"):
            c.predict(*args, api_name=name)
    assert app.localswap.store.get(job).status == "done"


def test_owner_can_act_and_actions_are_logged_with_the_user(served):
    from gradio_client import Client
    app, url, ws, job = served
    c = Client(url, auth=OWNER, verbose=False,
               download_files=str(ws.root.parent / "owner-downloads"))
    assert c.predict(job, api_name="/resume") is False      # allowed; a done job has nothing
    audit = (ws.root / "audit.log").read_text()
    # time, user (role), the action in words, what it touched, the outcome
    assert re.search(rf"\d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d  owner \(owner\)  resume a job  "
                     rf"\[job #{job}\]  allowed", audit), audit
    log = [e["text"] for e in app.localswap.store.events(job, "log")]
    assert "owner: resume a job (allowed)" in log


def test_the_audit_log_reads_without_the_code(served):
    """Every line names its user, role, action in words and outcome; a viewer's refused
    attempts are there too; no internal function name (handler, partial_1, <locals>)."""
    app, url, ws, job = served
    with login(url, VIEWER) as c:
        r = c.post("gradio_api/call/cancel", json={"data": [job]})
        assert r.status_code == 403
        assert c.post("gradio_api/upload", files={"files": ("x.mp4", b"0")}).status_code == 403
    lines = (ws.root / "audit.log").read_text().splitlines()
    refused = [x for x in lines if "watcher (viewer)" in x]
    assert any(f"cancel a job  [job #{job}]  refused: a viewer cannot change anything" in x
               for x in refused), refused
    assert any("upload a file  refused" in x for x in refused), refused
    for line in lines:
        assert not re.search(r"handler|partial_\d|<locals>|lambda|_\d+$", line), line
        assert re.search(r"\((owner|viewer)\)  .+  (allowed|refused: .+)$", line), line


def test_share_link_closes_after_its_hours_and_the_app_keeps_serving(served):
    from gradio.tunneling import CURRENT_TUNNELS

    from localswap.ui.share import expire_share
    app, url, ws, job = served

    class FakeTunnel:                  # offline here: stands in for Gradio's share tunnel
        killed = False

        def kill(self):
            self.killed = True
    tunnel = FakeTunnel()
    CURRENT_TUNNELS.append(tunnel)
    app.share_url = "https://example.gradio.live"
    timer = expire_share(app, hours=1.0 / 3600)          # one second
    timer.join(10)                 # the whole close, not just its first step (kill)
    assert not timer.is_alive(), "the share link did not close within 10 s"
    assert tunnel.killed and app.share_url is None and tunnel not in CURRENT_TUNNELS
    with login(url, OWNER) as c:
        assert c.get("config").status_code == 200          # still serving locally


def force_click(page, selector: str) -> None:
    """Click a button the page greyed out, as a page left open or a script could: the
    server must still refuse what it would do."""
    page.locator(selector).evaluate("b => { b.disabled = false; b.removeAttribute('disabled'); }")
    page.locator(selector).click()


def test_viewer_in_the_browser_sees_models_but_cannot_rename(served):
    """The viewer's page greys out every button that would change something (the banner says
    why, once); a refusal forced through anyway reads as one sentence, never JSON or an HTTP
    code; Delete is refused before any confirmation."""
    from pathlib import Path

    from ui_helpers import OUTPUT
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright
    app, url, ws, job = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(url)
        page.get_by_label(re.compile("username", re.I)).fill(VIEWER[0])
        page.get_by_label(re.compile("password", re.I)).fill(VIEWER[1])
        page.get_by_role("button", name=re.compile("login", re.I)).click()
        # the page says who is watching before anything is tried, and why buttons are grey
        banner = page.locator("#viewer-banner")
        banner.get_by_text("signed in as a viewer").wait_for(timeout=30_000)
        assert "greyed out" in banner.inner_text()
        wait_for(lambda: page.locator("#start").is_disabled(), 20, what="Start greyed out")
        # no upload box a viewer could drop a file on
        assert page.locator("#target-file input[type=file]").count() == 0
        assert page.locator("#source-files input[type=file]").count() == 0
        page.get_by_role("tab", name="Models").click()
        page.locator("#model-details").get_by_text("tiny_model").wait_for(timeout=30_000)
        page.get_by_text("Rename, export, delete").click()
        for name in ("Rename", "Export as one file", "Delete…"):
            assert page.get_by_role("button", name=name, exact=True).is_disabled(), name
        assert page.locator("#quick-start").is_disabled()
        assert page.locator("#quick-video input[type=file]").count() == 0
        # forced anyway: the server refuses, and the page says so in words
        page.get_by_label("New name").fill("taken over")
        force_click(page, "#model-rename")
        page.get_by_text(re.compile("not allowed", re.I)).first.wait_for(timeout=20_000)
        force_click(page, "#model-delete")
        page.get_by_text(re.compile("not allowed", re.I)).first.wait_for(timeout=20_000)
        time.sleep(1)
        assert not page.get_by_text("This cannot be undone").is_visible()
        # an upload forced through the page's own fetch: one sentence, no JSON, no HTTP code
        status = page.evaluate("""async () => {
            const form = new FormData();
            form.append('files', new Blob(['x'], {type: 'video/mp4'}), 'clip.mp4');
            return (await fetch('gradio_api/upload', {method: 'POST', body: form})).status; }""")
        note = page.locator("#viewer-refused")
        note.wait_for(timeout=10_000)
        assert "signed in as a viewer" in note.inner_text()
        text = page.locator("body").inner_text()
        assert "HTTP 403" not in text and '{"detail"' not in text, text
        OUTPUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUTPUT / "viewer-refused.png"), full_page=True)
        page.get_by_role("tab", name="Live").click()
        assert page.locator("#live-adapt").is_disabled()
        # The job view's frame preview is a read: the viewer gets it.
        page.get_by_role("tab", name="Job").click()
        page.locator("#job-status").get_by_text("finished job").wait_for(timeout=20_000)
        page.locator("text=Try before you render >> visible=true").first.click()
        assert page.locator("#job-preview-render").is_disabled()
        page.locator("#job-preview-show").click()
        page.locator("#job-preview-swapped img").wait_for(timeout=30_000)
        page.screenshot(path=str(OUTPUT / "viewer-job-preview.png"), full_page=True)
        browser.close()
    assert status == 200 and not dialogs, (status, dialogs)
    assert not list((ws.root / "uploads").glob("*clip*"))
    assert (ws.root / "models" / "tiny_model" / "manifest.json").is_file()
    assert not (ws.root / "models" / "taken over").exists()
    log = (ws.root / "audit.log").read_text()
    assert re.search(r'watcher \(viewer\)  press "Delete…".*refused', log), log


def test_launch_prints_a_viewer_login_when_shared(tmp_path):
    from ui_helpers import LaunchedApp
    app = LaunchedApp("--share", "--share-hours", "0.001", workspace=tmp_path / "ws")
    try:
        out = app.output()
        owner = re.search(r"\n  password: (\S+)", out).group(1)
        viewer = re.search(r"viewer user: (\S+)\n  viewer password: (\S+)", out).groups()
        for who in (("localswap", owner), viewer):
            with login(app.url, who) as c:
                assert c.get("config").status_code == 200
        with login(app.url, viewer) as c:
            r = c.post("gradio_api/upload", files={"files": ("a.txt", b"x")})
            assert r.status_code == 403 and "Not allowed" in r.text
        assert re.search(r"Roles are on: 'localswap' may do everything, 'viewer' only watches",
                         app.output())
    finally:
        app.close()


def test_the_login_page_says_where_the_login_comes_from(tmp_path):
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from launch import build_parser, login_message
    given = build_parser().parse_args(["--auth", "me:pw", "--viewer", "you:pw2"])
    assert "you were given by the person who started the app" in login_message(given)
    assert "printed" not in login_message(given)
    assert "printed when the app started" in login_message(build_parser().parse_args(
        ["--share"]))

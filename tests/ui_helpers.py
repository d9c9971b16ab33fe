"""Helpers for the runner, API and browser tests: a real app on 127.0.0.1, waiting for jobs,
and checks on rendered files."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "_output"
# Small enough for a 2-core CPU: a 64 px model of width 8 and a handful of iterations, on
# every 4th frame of the 2 s fixture videos (12 faces a side).
TINY_TRAIN = {"arch": "localswap", "resolution": 64, "width": 8, "batch": 4}
FAST_EXTRACT = {"size": 64, "every": 4}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, poll: float = 0.2, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def wait_job(store, job_id: int, statuses=("done", "failed", "cancelled"), timeout=180.0):
    job = wait_for(lambda: (j := store.get(job_id)) and j.status in statuses and j,
                   timeout, what=f"job {job_id} to reach {statuses}")
    return job


class InProcessApp:
    """build_app + launch on a free local port, in this process (the API tests' server)."""

    def __init__(self, workspace_dir: Path, **build_kwargs):
        from localswap.jobs.runner import Runner
        from localswap.ui.app import build_app, launch_kwargs
        from localswap.workspace import Workspace
        self.workspace = Workspace(workspace_dir)
        self.runner = Runner(self.workspace).start()
        self.app = build_app(self.workspace, self.runner, **build_kwargs)
        self.port = free_port()
        self.app.queue(default_concurrency_limit=4)
        self.app.launch(server_name="127.0.0.1", server_port=self.port, prevent_thread_lock=True,
                        quiet=True, ssr_mode=False,
                        **launch_kwargs(self.workspace, build_kwargs.get("uploads")))
        self.url = f"http://127.0.0.1:{self.port}/"

    def close(self) -> None:
        self.runner.stop()
        self.app.close()


class LaunchedApp:
    """`python launch.py ...` in a subprocess; reads what it prints."""

    def __init__(self, *args: str, workspace: Path, env: dict | None = None):
        self.port = free_port()
        self.log = OUTPUT / f"launch-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "launch.py"), "--port", str(self.port),
             "--workspace", str(workspace), *args],
            stdout=self._fh, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.url = f"http://127.0.0.1:{self.port}/"
        wait_for(lambda: "is running at" in self.output() or self.proc.poll() is not None,
                 90, what="launch.py to start")
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


def check_playable_mp4(path: Path, frames: int | None = None) -> None:
    """Decodes, is H.264 with an audio stream, and has the expected frame count."""
    from localswap import media
    info = media.probe(path)
    assert info.codec.startswith("h264"), info.codec
    assert info.has_audio, "the result has no audio stream"
    count = sum(1 for _ in media.read_frames(path, info=info))
    assert count > 0
    if frames is not None:
        assert abs(count - frames) <= 1, (count, frames)


def install_tiny_model(models_dir: Path, base: Path, faceset_a: Path, faceset_b: Path) -> Path:
    """Copy the session's tiny trained model (trained once, under `base`) into a library."""
    import shutil
    from model_fixtures import build_tiny_model
    src = build_tiny_model(base, faceset_a, faceset_b)
    dest = Path(models_dir) / "tiny_model"
    if not dest.exists():
        shutil.copytree(src, dest)
    return dest


# -- the browser (Debian's Chromium driven by Playwright; never `playwright install`) --------
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def needs_chromium():
    import pytest
    return pytest.mark.skipif(not Path(CHROMIUM).exists(),
                              reason="Debian chromium is not installed (apt-get install chromium)")


def launch_browser():
    """A context manager yielding a headless Chromium (module-scoped fixtures wrap it)."""
    import contextlib

    @contextlib.contextmanager
    def run():
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield b
            finally:
                b.close()
    return run()

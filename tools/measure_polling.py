"""Training throughput while 0, 2 and 5 clients poll the same job (a measurement, not a test).

    python tools/measure_polling.py [--clients 0 2 5 0] [--seconds 30] [--in-process] [--raw]

Starts `launch.py` in its own process (as a user would), queues one swap on the sample
videos through the API, waits until training runs, then for each client count lets that many
pollers (threads of this process, plain HTTP to the queue) ask for the job's status once a
second, as a browser tab's timer does, and reads the trainer's iteration count from the job database at
the start and end of the window. Prints it/s per client count, and the CPU seconds the app's
process and the clients used, since on a small machine they compete for the same cores.
--in-process runs the app inside this process instead.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

# The app helpers it starts the app with are the tests' own (tests/ui_helpers.py).
sys.path[:0] = [str(Path(__file__).parents[1] / "tests"), str(Path(__file__).parents[1])]


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(app) -> float:
    return cpu_of(app.proc.pid) if hasattr(app, "proc") else time.process_time()


def worker_cpu(app) -> float:
    """CPU seconds of the app's child processes (the job worker)."""
    pid = app.proc.pid if hasattr(app, "proc") else os.getpid()
    kids = [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
            for c in (t / "children").read_text().split()]
    return sum(cpu_of(k) for k in kids if Path(f"/proc/{k}").exists())


def descendants_cpu(pid: int, skip: int = 0) -> float:
    """CPU seconds of every process below `pid` except `skip`'s tree (the browser's)."""
    total, todo = 0.0, [pid]
    while todo:
        kids = []
        for p in todo:
            for t in Path(f"/proc/{p}/task").glob("*"):
                try:
                    kids += [int(c) for c in (t / "children").read_text().split()]
                except OSError:
                    pass
        kids = [k for k in kids if k != skip]
        for k in kids:
            try:
                total += cpu_of(k)
            except OSError:
                pass
        todo = kids
    return total


def steal() -> tuple[int, int]:
    """(steal ticks, all ticks) of the machine: CPU time the hypervisor gave to others."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return v[7], sum(v)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, nargs="+", default=[0, 2, 5, 0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the --clients list; medians per count are printed at the end")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--in-process", action="store_true")
    p.add_argument("--env", nargs="*", default=[], metavar="KEY=VALUE",
                   help="environment for the app's process, e.g. OMP_WAIT_POLICY=PASSIVE")
    p.add_argument("--browsers", action="store_true",
                   help="clients are Chromium tabs on the app's page (each polls with the "
                        "page's own timer) instead of API pollers")
    p.add_argument("--raw", action="store_true",
                   help="calls without a session hash (each one a new Gradio session), as a "
                        "bare curl loop makes them; by default each poller keeps one session, "
                        "as a browser tab and gradio_client do")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="OMP_NUM_THREADS for the app's process (0 = torch's default)")
    return p.parse_args()


def start_app(args: argparse.Namespace, tmp: Path):
    """The app (in this process or launched), with a swap of the sample videos training."""
    from gradio_client import Client, handle_file
    from localswap.bench import samples
    from localswap.jobs.store import JobStore
    from ui_helpers import FAST_EXTRACT, InProcessApp, LaunchedApp, wait_for

    a = samples.encode(tmp / "a.mp4", samples.moving_frames(
        samples.astronaut(), samples.FACE_CENTRES["astronaut"], 48), 24)
    b = samples.encode(tmp / "b.mp4", samples.moving_frames(
        samples.grace_hopper(), samples.FACE_CENTRES["grace_hopper"], 48, zoom=0.8), 24)
    env = {"OMP_NUM_THREADS": str(args.torch_threads)} if args.torch_threads else {}
    env.update(kv.split("=", 1) for kv in args.env)
    app = InProcessApp(tmp / "ws") if args.in_process else \
        LaunchedApp(workspace=tmp / "ws", env=env)
    try:
        client = Client(app.url, verbose=False)
        train = {"arch": "localswap", "resolution": 64, "width": args.width, "batch": 4,
                 "iterations": 10_000_000}
        job = client.predict(handle_file(str(a)), [handle_file(str(b))], True,
                             {"train": train, "extract": FAST_EXTRACT}, api_name="/swap")
        store = JobStore(tmp / "ws" / "localswap.db")
        wait_for(lambda: store.get(job).stage == "train" and
                 store.get(job).info.get("iteration", 0) > 5, 300, what="training")
    except BaseException:
        app.close()
        raise
    time.sleep(5)                                   # past warm-up
    return app, client, job, store


def poller(args: argparse.Namespace, url: str, job: int, stop: threading.Event,
           calls: list, errors: list):
    """A client polling the job once a second in plain HTTP, the way a page's timer reaches
    the queue: start the call, read its event stream. (gradio_client costs ~0.15 CPU s a
    call on this side.)"""
    import httpx

    def poll():
        request = {"data": [job]}
        if not args.raw:
            request["session_hash"] = os.urandom(6).hex()
        with httpx.Client(base_url=url + "gradio_api/", timeout=30) as h:
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    event = h.post("call/job", json=request).json()["event_id"]
                    body = h.get(f"call/job/{event}").text
                    assert "event: complete" in body, body[:200]
                    calls[0] += 1
                except Exception:
                    errors[0] += 1
                stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))
    return poll


def window(args, app, job, store, n: int, browser) -> tuple[float, float]:
    """One window with `n` polling clients: (it/s, it/s adjusted for steal); prints a line."""
    stop = threading.Event()
    calls, errors = [0], [0]
    app_pid = app.proc.pid if hasattr(app, "proc") else 0
    tabs, threads = [], []
    if browser is not None:
        tabs = [browser.new_page() for _ in range(n)]
        for tab in tabs:
            tab.on("request", lambda r: calls.__setitem__(0, calls[0] + (
                "queue/join" in r.url)))
            tab.goto(app.url)
        time.sleep(6)                           # pages loaded and on the job tab
        calls[0] = 0
    else:
        threads = [threading.Thread(target=poller(args, app.url, job, stop, calls, errors),
                                    daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        time.sleep(2)
    mine = (lambda: descendants_cpu(os.getpid(), app_pid)) if browser is not None else \
        (lambda: 0)
    cpu0 = time.process_time() + mine()
    server0, worker0 = server_cpu(app), worker_cpu(app)
    steal0 = steal()
    i0, t0 = store.get(job).info.get("iteration", 0), time.monotonic()
    time.sleep(args.seconds)
    i1, t1 = store.get(job).info.get("iteration", 0), time.monotonic()
    cpu = time.process_time() + mine() - cpu0
    server, worker = server_cpu(app) - server0, worker_cpu(app) - worker0
    steal1 = steal()
    stolen = 100 * (steal1[0] - steal0[0]) / max(1, steal1[1] - steal0[1])
    rate = (i1 - i0) / (t1 - t0)
    stop.set()
    for t in threads:
        t.join(5)
    for tab in tabs:
        tab.close()
    print(f"{n} polling clients: {rate:.2f} it/s "
          f"({i1 - i0} iterations in {t1 - t0:.0f} s; {calls[0]} polls, "
          f"{errors[0]} errors; CPU s: worker {worker:.1f}, server {server:.1f}, "
          f"clients {cpu:.1f}; steal {stolen:.0f} %; load {os.getloadavg()[0]:.2f})",
          flush=True)
    return rate, rate / max(0.05, 1 - stolen / 100)


def print_medians(rates: dict[int, list[tuple[float, float]]]) -> None:
    """Steal (a noisy neighbour on the host) moves it/s as much as the clients do: the
    second figure divides each window's rate by the share of the CPU it really had."""
    import statistics
    base = [statistics.median(r[i] for r in rates.get(0, [(math.nan, math.nan)]))
            for i in (0, 1)]
    for n, r in sorted(rates.items()):
        m = [statistics.median(x[i] for x in r) for i in (0, 1)]
        print(f"median over {len(r)} windows, {n} clients: {m[0]:.2f} it/s "
              f"({100 * (m[0] / base[0] - 1):+.1f} % against none); steal-adjusted "
              f"{m[1]:.2f} it/s ({100 * (m[1] / base[1] - 1):+.1f} %)", flush=True)


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="localswap-poll-"))
    app = None
    try:
        app, client, job, store = start_app(args, tmp)
        kind = ("browser tabs" if args.browsers else "raw calls" if args.raw else
                "one session per client")
        print(f"{'in-process' if args.in_process else 'launch.py'} app, {kind}, 64 px width "
              f"{args.width}, torch threads {args.torch_threads or 'default'}, windows of "
              f"{args.seconds:.0f} s", flush=True)
        browser = None
        if args.browsers:
            from playwright.sync_api import sync_playwright
            browser = sync_playwright().start().chromium.launch(
                executable_path="/usr/bin/chromium")
        rates: dict[int, list[tuple[float, float]]] = {}
        for n in args.clients * args.rounds:
            rates.setdefault(n, []).append(window(args, app, job, store, n, browser))
        print_medians(rates)
        client.predict(job, api_name="/cancel")
    finally:
        if app is not None:
            app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

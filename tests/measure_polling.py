"""Training throughput while 0, 2 and 5 clients poll the same job (a measurement, not a test).

    python tests/measure_polling.py [--clients 0 2 5 0] [--seconds 30] [--in-process] [--raw]

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
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]


def server_cpu(app) -> float:
    """CPU seconds (user + system) the app's process has used so far."""
    if not hasattr(app, "proc"):
        return time.process_time()
    fields = Path(f"/proc/{app.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, nargs="+", default=[0, 2, 5, 0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--in-process", action="store_true")
    p.add_argument("--raw", action="store_true",
                   help="calls without a session hash (each one a new Gradio session), as a "
                        "bare curl loop makes them; by default each poller keeps one session, "
                        "as a browser tab and gradio_client do")
    p.add_argument("--torch-threads", type=int, default=0,
                   help="OMP_NUM_THREADS for the app's process (0 = torch's default)")
    args = p.parse_args()

    import httpx
    from gradio_client import Client, handle_file
    from localswap import samples
    from localswap.jobs.store import JobStore
    from ui_helpers import FAST_EXTRACT, InProcessApp, LaunchedApp, wait_for

    tmp = Path(tempfile.mkdtemp(prefix="localswap-poll-"))
    a = samples.encode(tmp / "a.mp4", samples.moving_frames(
        samples.astronaut(), samples.FACE_CENTRES["astronaut"], 48), 24)
    b = samples.encode(tmp / "b.mp4", samples.moving_frames(
        samples.grace_hopper(), samples.FACE_CENTRES["grace_hopper"], 48, zoom=0.8), 24)
    env = {"OMP_NUM_THREADS": str(args.torch_threads)} if args.torch_threads else None
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
        time.sleep(5)                                   # past warm-up
        print(f"{'in-process' if args.in_process else 'launch.py'} app, "
              f"{'raw calls' if args.raw else 'one session per client'}, 64 px width "
              f"{args.width}, torch threads {args.torch_threads or 'default'}, windows of "
              f"{args.seconds:.0f} s", flush=True)
        for n in args.clients:
            stop = threading.Event()
            calls, errors = [0], [0]

            def poll():
                # Plain HTTP, the way a page's timer reaches the queue: start the call, read
                # its event stream. (gradio_client costs ~0.15 CPU s a call on this side.)
                body = {"data": [job]}
                if not args.raw:
                    body["session_hash"] = os.urandom(6).hex()
                with httpx.Client(base_url=app.url + "gradio_api/", timeout=30) as h:
                    while not stop.is_set():
                        t0 = time.monotonic()
                        try:
                            event = h.post("call/job", json=body).json()["event_id"]
                            body = h.get(f"call/job/{event}").text
                            assert "event: complete" in body, body[:200]
                            calls[0] += 1
                        except Exception:
                            errors[0] += 1
                        stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))
            threads = [threading.Thread(target=poll, daemon=True) for _ in range(n)]
            for t in threads:
                t.start()
            time.sleep(2)
            cpu0 = time.process_time()
            server0 = server_cpu(app)
            i0, t0 = store.get(job).info.get("iteration", 0), time.monotonic()
            time.sleep(args.seconds)
            i1, t1 = store.get(job).info.get("iteration", 0), time.monotonic()
            cpu = time.process_time() - cpu0
            server = server_cpu(app) - server0
            stop.set()
            for t in threads:
                t.join(5)
            print(f"{n} polling clients: {(i1 - i0) / (t1 - t0):.2f} it/s "
                  f"({i1 - i0} iterations in {t1 - t0:.0f} s; {calls[0]} polls, "
                  f"{errors[0]} errors; CPU s: server {server:.1f}, clients {cpu:.1f}; load "
                  f"{os.getloadavg()[0]:.2f})", flush=True)
        client.predict(job, api_name="/cancel")
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training throughput while 0, 2 and 5 clients poll the same job (a measurement, not a test).

    python tests/measure_polling.py [--clients 0 2 5] [--seconds 40] [--iterations 100000]

Starts the app in this process on 127.0.0.1, queues one swap on the sample videos, waits
until training runs, then for each client count lets that many gradio_client pollers ask for
the job's status once a second (what a browser tab's timer does) and reads the trainer's
iteration count at the start and end of the window. Prints it/s per client count.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, nargs="+", default=[0, 2, 5, 0])
    p.add_argument("--seconds", type=float, default=40.0)
    p.add_argument("--iterations", type=int, default=100_000)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--width", type=int, default=16)
    args = p.parse_args()

    from gradio_client import Client, handle_file
    from localswap import samples
    from ui_helpers import FAST_EXTRACT, InProcessApp, wait_for

    tmp = Path(tempfile.mkdtemp(prefix="localswap-poll-"))
    a = samples.encode(tmp / "a.mp4", samples.moving_frames(
        samples.astronaut(), samples.FACE_CENTRES["astronaut"], 48), 24)
    b = samples.encode(tmp / "b.mp4", samples.moving_frames(
        samples.grace_hopper(), samples.FACE_CENTRES["grace_hopper"], 48, zoom=0.8), 24)
    app = InProcessApp(tmp / "ws")
    try:
        client = Client(app.url, verbose=False)
        train = {"arch": "localswap", "resolution": args.resolution, "width": args.width,
                 "batch": 4, "iterations": args.iterations}
        job = client.predict(handle_file(str(a)), [handle_file(str(b))], True,
                             {"train": train, "extract": FAST_EXTRACT}, api_name="/swap")
        store = app.runner.store
        wait_for(lambda: store.get(job).stage == "train" and
                 store.get(job).info.get("iteration", 0) > 5, 300, what="training")
        time.sleep(5)                                   # past warm-up
        for n in args.clients:
            stop = threading.Event()
            calls, errors = [0], [0]

            def poll():
                c = Client(app.url, verbose=False)
                while not stop.is_set():
                    t0 = time.monotonic()
                    try:
                        c.predict(job, api_name="/job")
                        calls[0] += 1
                    except Exception:
                        errors[0] += 1
                    stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))
            threads = [threading.Thread(target=poll, daemon=True) for _ in range(n)]
            for t in threads:
                t.start()
            time.sleep(2)
            i0, t0 = store.get(job).info.get("iteration", 0), time.monotonic()
            time.sleep(args.seconds)
            i1, t1 = store.get(job).info.get("iteration", 0), time.monotonic()
            stop.set()
            for t in threads:
                t.join(5)
            print(f"{n} polling clients: {(i1 - i0) / (t1 - t0):.2f} it/s "
                  f"({i1 - i0} iterations in {t1 - t0:.0f} s; {calls[0]} polls, "
                  f"{errors[0]} errors)", flush=True)
        app.runner.cancel(job)
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

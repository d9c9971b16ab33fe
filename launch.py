"""Start the localswap web app.

    python launch.py [--host 127.0.0.1] [--port 7860] [--share] [--auth USER:PASS]
                     [--viewer USER:PASS] [--share-hours 72]
                     [--workspace DIR] [--max-gb 2] [--max-upload-minutes 10] [--downscale PX]

Binds to this machine only by default. A share link or a non-local host is never served
without a password: without --auth one is generated and printed once, and so is a viewer's
login (sees everything, changes nothing) without --viewer.
"""
from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"     # telemetry off, before gradio loads
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def parse_auth(value: str | None, flag: str = "--auth") -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit(f"{flag} must look like USER:PASSWORD")
    return user, password


def build_parser() -> argparse.ArgumentParser:
    from dataclasses import fields

    from localswap.jobs.uploads import UploadSettings
    p = argparse.ArgumentParser(description="localswap web app")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true",
                   help="open a temporary public Gradio link (always password-protected)")
    p.add_argument("--auth", help="USER:PASSWORD required to open the app")
    p.add_argument("--viewer", help="USER:PASSWORD of a viewer, who sees jobs, previews and "
                   "results but cannot start, cancel, delete, rename, import or export "
                   "(generated and printed with --share or a non-local --host)")
    p.add_argument("--share-hours", type=float, default=72.0,
                   help="close the public share link after this many hours; the app keeps "
                        "serving locally (default 72)")
    p.add_argument("--workspace", default="workspace", help="folder for facesets, models, jobs")
    p.add_argument("--no-resume", action="store_true",
                   help="leave interrupted jobs for a Resume click instead of resuming them")
    UploadSettings.add_arguments(p, skip=("max_minutes",))
    # --max-upload-minutes: `swap --max-minutes` is a training time budget, so the upload
    # limit has a name of its own; the old spelling still works, with a note.
    minutes = next(f for f in fields(UploadSettings) if f.name == "max_minutes")
    p.add_argument("--max-upload-minutes", dest="max_minutes", type=float, default=None,
                   metavar="MINUTES",
                   help=f"{minutes.metadata['help']} (default: {minutes.default:g})")
    p.add_argument("--max-minutes", dest="old_max_minutes", type=float, default=None,
                   help=argparse.SUPPRESS)
    return p


def upload_minutes(args) -> None:
    """Take the old --max-minutes spelling, saying once that it is now --max-upload-minutes."""
    if args.old_max_minutes is None:
        return
    print("note: --max-minutes is now --max-upload-minutes (the longest video accepted); "
          "the old spelling will go", file=sys.stderr, flush=True)
    if args.max_minutes is None:
        args.max_minutes = args.old_max_minutes


def password_for(args) -> tuple[str, str] | None:
    """The login the app requires: --auth, or a generated one when others can reach it."""
    auth = parse_auth(args.auth)
    exposed = args.share or args.host not in LOCAL_HOSTS
    if exposed and auth is None:
        auth = ("localswap", secrets.token_urlsafe(12))
        print(f"The app is reachable by others, so it needs a password.\n"
              f"  user: {auth[0]}\n  password: {auth[1]}", flush=True)
    return auth


def viewer_for(args, auth) -> tuple[str, str] | None:
    """The viewer's login: --viewer, or a generated one when others can reach the app."""
    viewer = parse_auth(args.viewer, "--viewer")
    exposed = args.share or args.host not in LOCAL_HOSTS
    if exposed and viewer is None:
        viewer = ("viewer", secrets.token_urlsafe(12))
        print(f"A collaborator who should only watch signs in as the viewer.\n"
              f"  viewer user: {viewer[0]}\n  viewer password: {viewer[1]}", flush=True)
    if viewer is not None and auth is None:
        raise SystemExit("--viewer needs --auth too (the owner's login)")
    if viewer is not None and viewer[0] == auth[0]:
        raise SystemExit("--viewer needs a user name other than the owner's")
    return viewer


def login_message(args) -> str:
    """What the login page says: where the login came from (printed at start, or given with
    --auth / --viewer by whoever started the app)."""
    if args.auth:
        return ("localswap: sign in with the user name and password you were given by the "
                "person who started the app" + (" (a viewer login watches only)."
                                                 if args.viewer else "."))
    return "localswap: sign in with the user and password printed when the app started."


def stop_on_sigterm() -> None:
    """`kill`, `systemctl stop` and `docker stop` send SIGTERM: stop the way Ctrl-C does, so
    the running job saves and resumes on the next start and multiprocessing releases the
    runner's 17 named semaphores. Python's default ends the process at once, and its resource
    tracker then warns of "17 leaked semaphore objects"."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    upload_minutes(args)
    stop_on_sigterm()
    auth = password_for(args)
    viewer = viewer_for(args, auth)

    from localswap.errors import UserError
    from localswap.jobs.runner import Runner
    from localswap.jobs.uploads import UploadSettings
    from localswap.ui.app import build_app, launch_kwargs
    from localswap.workspace import Workspace

    try:
        uploads = UploadSettings.from_args(args)
    except UserError as exc:
        raise SystemExit(f"error: {exc}")
    ws = Workspace(args.workspace)
    runner = Runner(ws, resume=not args.no_resume).start()
    app = build_app(ws, runner, uploads)
    if viewer is not None:
        app.localswap.viewers = frozenset({viewer[0]})
    try:
        app.queue(default_concurrency_limit=4)
        # share: opened below by the app (ui/share.py), so that Gradio's own messages on a
        # failure (its download URL, antivirus advice) never reach the terminal
        app.launch(server_name=args.host, server_port=args.port, share=False,
                   auth=[auth, viewer] if viewer else auth,
                   auth_message=login_message(args),
                   # quiet: Gradio's own lines name its Python API ("set share=True in
                   # launch()"); the app prints its own, naming its flags.
                   prevent_thread_lock=True, ssr_mode=False, quiet=True,
                   **launch_kwargs(ws, uploads))
        if args.share:
            from localswap.ui.share import expire_share, open_share, status
            if open_share(app, args.share_hours):
                expire_share(app, args.share_hours)
                print(f"Public link: {app.share_url} (behind the password; it closes in "
                      f"{args.share_hours:g} hours, --share-hours).", flush=True)
            else:
                print(f"The share link could not be created: {status(app.localswap)['why']}. "
                      f"The app keeps running locally at {app.local_url}", file=sys.stderr,
                      flush=True)
        print(f"localswap is running at {app.local_url} (Ctrl-C stops it; running jobs "
              "resume on the next start)", flush=True)
        if viewer is not None:
            print(f"Roles are on: {auth[0]!r} may do everything, {viewer[0]!r} only watches "
                  "(audit.log in the workspace lists every change and refusal).", flush=True)
        if not args.share:
            print("To let someone elsewhere use it, start it with --share (a temporary public "
                  "link, always behind a password).", flush=True)
        app.block_thread()
    finally:
        runner.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

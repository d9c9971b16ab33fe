"""Start the localswap web app: python launch.py [--host] [--port] [--share] [--auth USER:PASS]"""
from __future__ import annotations

import argparse
import os
import secrets
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("--auth must look like USER:PASSWORD")
    return user, password


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="localswap web app")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true",
                   help="open a temporary public Gradio link (always password-protected)")
    p.add_argument("--auth", help="USER:PASSWORD required to open the app")
    p.add_argument("--workspace", default="workspace", help="folder for facesets, models, jobs")
    args = p.parse_args(argv)

    from localswap.ui.app import build_app
    from localswap.workspace import Workspace

    auth = parse_auth(args.auth)
    exposed = args.share or args.host not in ("127.0.0.1", "localhost", "::1")
    if exposed and auth is None:
        auth = ("localswap", secrets.token_urlsafe(12))
        print(f"The app is reachable by others, so it needs a password.\n"
              f"  user: {auth[0]}\n  password: {auth[1]}", flush=True)
    app = build_app(Workspace(args.workspace))
    try:
        app.launch(server_name=args.host, server_port=args.port, share=args.share, auth=auth)
    except Exception as exc:  # a share tunnel that cannot open must not take the app down
        if not args.share:
            raise
        print(f"The share link could not be created ({exc}); serving locally only.",
              file=sys.stderr, flush=True)
        app.launch(server_name=args.host, server_port=args.port, share=False, auth=auth)
    return 0


if __name__ == "__main__":
    sys.exit(main())

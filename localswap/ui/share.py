"""The public share link's lifetime: `--share-hours H` closes it after H hours while the app
keeps serving locally."""
from __future__ import annotations

import sys
import threading


def close_share(app) -> bool:
    """Close the app's share tunnel(s) now; True if a link was open."""
    from gradio.tunneling import CURRENT_TUNNELS
    was_open = bool(getattr(app, "share_url", None))
    for tunnel in list(CURRENT_TUNNELS):
        try:
            tunnel.kill()
        finally:
            if tunnel in CURRENT_TUNNELS:
                CURRENT_TUNNELS.remove(tunnel)
    app.share_url = None
    return was_open


def expire_share(app, hours: float) -> threading.Timer:
    """Close the share link after `hours` (a daemon timer; cancel() it to keep the link)."""
    def close():
        if close_share(app):
            print(f"The share link closed after {hours:g} hours (--share-hours); the app "
                  f"keeps serving locally at {app.local_url}", file=sys.stderr, flush=True)
    timer = threading.Timer(hours * 3600, close)
    timer.daemon = True
    timer.start()
    return timer

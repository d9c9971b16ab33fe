"""The public share link: opened through Gradio's tunnel by the app itself, so that what a
user reads about it is one sentence of the app's (Gradio's own messages on failure name its
download URL, antivirus software and its Python API), shown at start and on the System tab;
`--share-hours H` closes it after H hours while the app keeps serving locally."""
from __future__ import annotations

import contextlib
import io
import sys
import threading
import time

OFF = {"state": "off"}


def status(ctx) -> dict:
    """{"state": "off" | "on" | "failed" | "closed", "url", "why", "until"} for the System tab."""
    return dict(getattr(ctx, "share", None) or OFF)


def _set(app, **state) -> None:
    ctx = getattr(app, "localswap", None)
    if ctx is not None:
        ctx.share = state


def why_not(exc: BaseException) -> str:
    """Why the tunnel did not open, in words (what Gradio raised, without its advice)."""
    from gradio.exceptions import ChecksumMismatchError, ShareCertificateWriteError
    if isinstance(exc, ChecksumMismatchError):
        return "Gradio's tunnel program on this machine is damaged (its checksum does not match)"
    if isinstance(exc, ShareCertificateWriteError):
        return "the share server's certificate could not be saved (the folder is read-only)"
    if isinstance(exc, ValueError):
        return "the Gradio share server refused the tunnel"
    if isinstance(exc, OSError) and "incompatible" in str(exc):
        return "Gradio offers no tunnel program for this kind of machine"
    # the share server's address is asked first, then the tunnel program is downloaded if
    # missing: both fail the same way without internet
    return "the Gradio share server is not reachable (no internet here, or a firewall)"


def open_share(app, hours: float) -> str | None:
    """Open the public link for the launched `app`; the link, or None (the reason is kept for
    the System tab and returned by status()). Nothing Gradio prints on the way reaches the
    terminal: the caller prints one sentence."""
    from urllib.parse import urlparse, urlunparse

    from gradio import networking
    quiet = io.StringIO()
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            url = networking.setup_tunnel(
                local_host=app.server_name, local_port=app.server_port,
                share_token=app.share_token,
                share_server_address=getattr(app, "share_server_address", None),
                share_server_tls_certificate=getattr(app, "share_server_tls_certificate",
                                                     None))
    except Exception as exc:  # noqa: BLE001  (any failure: the app serves locally)
        _set(app, state="failed", why=why_not(exc))
        return None
    app.share_url = urlunparse(("https",) + urlparse(url)[1:])
    app.share = True
    _set(app, state="on", url=app.share_url, until=time.time() + hours * 3600)
    return app.share_url


def close_share(app) -> bool:
    """Close the app's share tunnel(s) now; True if a link was open."""
    from gradio.tunneling import CURRENT_TUNNELS
    was_open = bool(getattr(app, "share_url", None))
    for tunnel in list(CURRENT_TUNNELS):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                tunnel.kill()
        finally:
            if tunnel in CURRENT_TUNNELS:
                CURRENT_TUNNELS.remove(tunnel)
    app.share_url = None
    if was_open:
        _set(app, state="closed")
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


def describe(ctx) -> str:
    """The System tab's section on sharing."""
    from localswap.progress import duration_text
    s = status(ctx)
    if s["state"] == "on":
        left = max(0.0, s.get("until", 0) - time.time())
        return (f"### Sharing\nOn: anyone with the password can open {s['url']} for "
                f"{duration_text(left)} more; then the link closes and the app keeps serving "
                "on this machine.")
    if s["state"] == "failed":
        return (f"### Sharing\nFailed: no public link, because {s['why']}. The app keeps "
                "serving on this machine.")
    if s["state"] == "closed":
        return "### Sharing\nClosed: the public link reached its time limit."
    return ("### Sharing\nOff: no public link. The person who starts the app can ask for a "
            "temporary one, always behind a password.")

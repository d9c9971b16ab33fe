"""localswap/ui/security.py leans on Gradio's private parts: the server's `tokens` (login
token -> user) and `cookie_id` (the login cookie's name), `auth`, `blocks.fns` with each
BlockFunction's `api_name` and `fn`, and Gradio handing its App to middleware as
scope["app"]. requirements.txt pins the Gradio range this was tested with; this test says, on
the Gradio installed, that each still exists and means what security.py takes it to mean."""
from __future__ import annotations

import asyncio

import gradio as gr
import httpx

from localswap.ui import security
from ui_helpers import free_port


def echo(text: str) -> str:
    return text


def test_the_private_gradio_parts_security_reads_still_hold():
    with gr.Blocks() as demo:
        box = gr.Textbox()
        box.submit(echo, box, box, api_name="echo")
    seen = []

    class Spy:                              # a middleware as security.py's are
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                seen.append(scope.get("app"))
            return await self.app(scope, receive, send)

    from starlette.middleware import Middleware
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, auth=("user", "pass"),
                prevent_thread_lock=True, quiet=True, ssr_mode=False,
                app_kwargs={"middleware": [Middleware(Spy)]})
    try:
        url = f"http://127.0.0.1:{port}/"
        with httpx.Client(base_url=url, timeout=30) as c:
            assert c.post("login", data={"username": "user", "password": "pass"}).status_code \
                == 200
            cookies = dict(c.cookies)
            c.get("config")
        server = seen[-1]
        # What middleware sees is Gradio's App, with the login state security.py reads.
        assert server is demo.server_app and server.blocks is demo
        assert getattr(server, "auth", None) is not None
        assert isinstance(server.cookie_id, str) and server.cookie_id
        names = {f"access-token-{server.cookie_id}", f"access-token-unsecure-{server.cookie_id}"}
        [token] = {v for k, v in cookies.items() if k in names}     # one login, one token
        assert server.tokens[token] == "user"
        # security.py's readers, on real requests' scopes.
        scope = {"type": "http", "method": "GET", "path": "/config", "query_string": b"",
                 "headers": [(b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items())
                              .encode())], "app": server}
        assert asyncio.run(security.logged_in(server, scope))
        assert asyncio.run(security.user_of(server, scope)) == "user"
        stranger = dict(scope, headers=[])
        assert not asyncio.run(security.logged_in(server, stranger))
        # The function a call dispatches to, by api_name, and its Python function.
        fn = security.dispatched_fn(demo, "/gradio_api/call/echo", {})
        assert fn is not None and fn.api_name == "echo" and fn.fn is echo
        assert security.fn_key(fn.fn) == f"{__name__}:echo"
    finally:
        demo.close()

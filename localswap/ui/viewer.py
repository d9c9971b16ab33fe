"""The viewer's page: what a viewer sees greyed out, and the one sentence a refusal shows.

The server refuses a viewer every state-changing route and function (security.py); this
module only makes the page say so before anything is tried. The controls to grey out are
read from the built app, not listed by hand: every component that fires an owner function
(security.OWNER_FNS), and every file or camera input (uploads are owner-only routes)."""
from __future__ import annotations

import gradio as gr

from localswap.ui import security

BANNER = ("**You are signed in as a viewer**: you can watch the jobs, models and previews, "
          "but not start, change or delete anything, so those buttons and uploads are greyed "
          "out.")
# What the page shows when a refusal reaches the server anyway (a page left open across a
# restart with roles on, a control the page failed to grey out): the same sentence the
# server sends, without the HTTP status or the JSON around it.
REFUSED = security.NOT_ALLOWED
UPLOADERS = (gr.File, gr.UploadButton)


def owner_controls(app: gr.Blocks) -> list:
    """The components a viewer must see disabled, in a stable order."""
    found: dict[int, gr.components.Component] = {}
    for fn in app.fns.values():
        owner = security.fn_key(fn.fn) in security.OWNER_FNS
        for target in fn.targets if owner else ():
            block = app.blocks.get(target[0])
            if isinstance(block, gr.components.Component):
                found[block._id] = block
        for block in fn.inputs:
            if isinstance(block, UPLOADERS) or (
                    isinstance(block, (gr.Image, gr.Video)) and block.interactive is not False):
                found[block._id] = block
    for block in app.blocks.values():
        if isinstance(block, UPLOADERS) and block.interactive is not False:
            found[block._id] = block
    return [found[k] for k in sorted(found)]


def banner_update(viewer: bool):
    return gr.update(visible=True, value=BANNER) if viewer else gr.skip()


def locked_update(viewer: bool):
    return gr.update(interactive=False) if viewer else gr.skip()


def lock(outputs: list, values: list, locked: list, viewer: bool) -> list:
    """`values` (one per output) with the locked outputs disabled as well, for a viewer."""
    if not viewer:
        return list(values)
    out = []
    for block, value in zip(outputs, values):
        if any(block is c for c in locked):
            value = {**value, "interactive": False} if isinstance(value, dict) else \
                gr.update(interactive=False)
        out.append(value)
    return out


# In the page: a viewer's refused upload or call shows REFUSED once, in words. Gradio's own
# handling would print an upload refusal as 'HTTP 403: {"detail": ...}'; the upload is answered
# to the page as "no file" (the server refused it: nothing was stored) and the sentence shows.
PAGE_JS = """
(() => {
  const refused = %(refused)s;
  const say = () => {
    let el = document.getElementById('viewer-refused');
    if (!el) {
      el = document.createElement('div'); el.id = 'viewer-refused'; el.setAttribute('role', 'alert');
      el.style.cssText = 'position:fixed;top:12px;right:12px;z-index:1000;max-width:420px;' +
        'padding:10px 14px;border-radius:8px;background:var(--background-fill-secondary,#f4f4f5);' +
        'border:1px solid var(--border-color-primary,#ccc);font:14px sans-serif';
      document.body.appendChild(el); }
    el.textContent = refused; el.hidden = false;
    clearTimeout(el._hide); el._hide = setTimeout(() => { el.hidden = true; }, 8000); };
  const plain = window.fetch.bind(window);
  window.fetch = async (input, init) => {
    const response = await plain(input, init);
    const url = typeof input === 'string' ? input : (input && input.url) || '';
    if (response.status !== 403 || !/gradio_api\\/upload/.test(url)) return response;
    const text = await response.clone().text();
    if (!text.includes(refused)) return response;
    say();
    return new Response('[]', {status: 200, headers: {'content-type': 'application/json'}});
  };
})();
"""


def page_js() -> str:
    import json
    return PAGE_JS % {"refused": json.dumps(REFUSED)}

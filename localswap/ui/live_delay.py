"""Live: the delay from the camera to the screen, measured in the browser.

The server's time per frame leaves out the upload, the wait in the queue, the download and
the drawing. The page measures the whole: it notes the moment each webcam frame is captured
(Gradio draws the video into a canvas and encodes it), writes that moment into the frame's
request in place of the hidden CAPTURE_SLOT input, the server hands it back with the swapped
frame, and when that frame is drawn the page shows now minus then (both on the page's own
clock) as a running median."""
from __future__ import annotations

CAPTURE_SLOT = "capture-time"      # the hidden input's value; the page puts the time there
LABELS = {"audio.record": "Start swapping", "audio.stop": "Stop swapping",
          "audio.waiting": "Starting the camera…"}

PAGE_JS = """
(() => {
  const SLOT = %(slot)s, KEEP = 30;
  const captured = new Map();          // encoded frame -> performance.now() at capture
  let drawnAt = null;
  const draw = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (source, ...rest) {
    if (source instanceof HTMLVideoElement && source.closest && source.closest('#live-in'))
      this.canvas.__liveAt = performance.now();
    return draw.call(this, source, ...rest); };
  const encode = HTMLCanvasElement.prototype.toDataURL;
  HTMLCanvasElement.prototype.toDataURL = function (...args) {
    const out = encode.apply(this, args);
    if (this.__liveAt !== undefined) {
      captured.set(out, this.__liveAt); delete this.__liveAt;
      while (captured.size > 8) captured.delete(captured.keys().next().value); }
    return out; };
  const when = (v) => typeof v === 'string' ? captured.get(v)
    : v && typeof v === 'object' ? (captured.get(v.url) ?? captured.get(v.path)) : undefined;
  const plain = window.fetch.bind(window);
  window.fetch = (input, init) => {
    try {
      const url = typeof input === 'string' ? input : (input && input.url) || '';
      if (/gradio_api\\/stream\\/[^/]+$/.test(url) && init && typeof init.body === 'string'
          && init.body.includes(SLOT)) {
        const body = JSON.parse(init.body);
        const at = (body.data || []).map(when).find(t => t !== undefined);
        if (at !== undefined) {
          body.data = body.data.map(v => v === SLOT ? String(at) : v);
          init = {...init, body: JSON.stringify(body)}; } }
    } catch (e) { /* the frame goes as it was */ }
    return plain(input, init); };
  const delays = []; let lastSrc = null;
  const show = () => {
    const el = document.querySelector('#live-delay'); if (!el || !delays.length) return;
    const sorted = [...delays].sort((a, b) => a - b);
    const median = sorted[sorted.length >> 1];
    el.textContent = `Camera to screen: ${Math.round(median)} ms (median of the last ` +
      `${delays.length} frames shown)`;
    el.dataset.ms = String(Math.round(median)); };
  const watch = () => {
    const img = document.querySelector('#live-out img');
    const stamp = document.querySelector('#live-shown textarea, #live-shown input');
    if (img && img.src && img.src !== lastSrc && stamp) {
      lastSrc = img.src;
      const at = parseFloat(stamp.value);
      if (Number.isFinite(at)) {
        const done = () => { delays.push(performance.now() - at);
          if (delays.length > KEEP) delays.shift(); show(); };
        (img.decode ? img.decode() : Promise.resolve()).then(done, done); } }
    requestAnimationFrame(watch); };
  requestAnimationFrame(watch);
})();
"""


def page_js() -> str:
    import json
    return PAGE_JS % {"slot": json.dumps(CAPTURE_SLOT)}


def echo(value) -> str | None:
    """The capture time to hand back with the swapped frame (None: not stamped by a page)."""
    try:
        return str(float(value))
    except (TypeError, ValueError):
        return None

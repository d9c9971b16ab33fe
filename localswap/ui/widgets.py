"""Gradio widgets built from the settings dataclasses, so defaults, ranges, choices and help
text have one source (localswap/settings.py); nothing here repeats a default."""
from __future__ import annotations

import dataclasses
from dataclasses import fields

import gradio as gr

from localswap.errors import UserError

SLIDER_MAX_SPAN = 2048      # wider ranges get a number box: a slider would be too coarse


def default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def label_of(f: dataclasses.Field) -> str:
    """The widget's name: the plain label the settings give it, else the field's name."""
    return f.metadata.get("label") or f.name.replace("_", " ").capitalize()


def _choice(value, auto: str):
    """A dropdown entry; the 0 that means "chosen for you" is shown as its word."""
    return (auto, value) if auto and value in (0, None) else (str(value), value)


def widget(f: dataclasses.Field, value=None, **kwargs) -> gr.Component:
    meta, default = f.metadata, default_of(f)
    value = default if value is None else value
    auto = meta.get("auto") or ""
    common = {"label": label_of(f), "info": meta.get("help"), **kwargs}
    typ = str(f.type)
    if isinstance(default, bool) or typ == "bool":
        return gr.Checkbox(value=bool(value), **common)
    if meta.get("choices"):
        return gr.Dropdown(choices=[_choice(c, auto) for c in meta["choices"]], value=value,
                           **common)
    is_int = isinstance(default, int) or typ.startswith("int")
    is_num = is_int or isinstance(default, float) or typ.startswith("float")
    if is_num:
        low, high = meta.get("low"), meta.get("high")
        if auto:
            # An empty box showing the word in grey (a slider at 0, or a number box, which
            # shows an empty value as 0, would read as "zero"); left empty, the planner or the
            # default decides. Ranges are checked when the swap starts, with the sentence.
            return gr.Textbox(value="" if value in (0, None) else str(value), placeholder=auto,
                              **common)
        if (value is not None and low is not None and high is not None
                and high - low <= SLIDER_MAX_SPAN):
            step = 1 if is_int else (high - low) / 100
            return gr.Slider(minimum=low, maximum=high, value=value, step=step, **common)
        return gr.Number(value=value, minimum=low, maximum=high, precision=0 if is_int else None,
                         **common)
    return gr.Textbox(value="" if value is None else str(value), **common)


def settings_widgets(cls, names: list[str] | None = None, skip: tuple[str, ...] = (),
                     values: dict | None = None, prefix: str = "",
                     **kwargs) -> dict[str, gr.Component]:
    """One widget per field of `cls` (in `names` order if given), keyed by field name; each
    gets the element id `{prefix}-{field}` (for tests and custom CSS)."""
    if cls is None:
        return {}
    by_name = {f.name: f for f in fields(cls)}
    order = [n for n in (names or list(by_name)) if n in by_name and n not in skip]
    return {n: widget(by_name[n], (values or {}).get(n),
                      elem_id=f"{prefix}-{n}".replace("_", "-") if prefix else None, **kwargs)
            for n in order}


def collect(cls, names: list[str], values: list) -> dict:
    """Widget values back to typed settings values; fields left at their default are dropped
    so the planner (Basic mode) and later defaults still apply to them."""
    if cls is None:
        return {}
    by_name = {f.name: f for f in fields(cls)}
    out = {}
    for name, value in zip(names, values):
        f = by_name[name]
        default = default_of(f)
        typ = str(f.type)
        if value in ("", None):
            continue
        if isinstance(value, str):
            value = value.strip()
            if not value:
                continue
        try:
            if isinstance(default, bool) or typ == "bool":
                value = bool(value)
            elif isinstance(default, int) or typ.startswith("int"):
                value = int(round(float(value)))
            elif isinstance(default, float) or typ.startswith("float"):
                value = float(value)
        except ValueError:
            raise UserError(f"{label_of(f)}: type a number, or leave it empty for "
                            f"{f.metadata.get('auto') or 'the default'}.") from None
        if value != default:
            out[name] = value
    return out

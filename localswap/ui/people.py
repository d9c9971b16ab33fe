"""Pick the person: the distinct people in an uploaded video (a thumbnail and frame count
each), for New swap (who is replaced in the target, who is "B" in a source video) and for
Quick swap (which model each person gets). The numbers are those of `extract --list-people`."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from localswap import media
from localswap.ui.context import human_error

EVERYONE = "Everyone (every face)"
MAIN = "The main person (longest on screen)"
NOT_SWAPPED = "(not swapped)"
MAX_PEOPLE = 6         # Quick swap shows one model choice per person, up to this many


def find_people(path: str | Path | None, progress=None):
    """(gallery items [(thumbnail, caption)], People) for a video or photo; ([], None) when
    there is nothing to list. `progress`: a gr.Progress, shown while the video is read."""
    from localswap.faces.identities import list_people
    if not path:
        return [], None
    path = Path(path if isinstance(path, str) else getattr(path, "name", path))
    if not (media.is_video(path) or media.is_image(path)):
        return [], None
    with tempfile.TemporaryDirectory() as tmp:
        report = None
        if progress is not None:
            def report(done, total, message="", **_):
                progress((done, total), desc="Finding the people in the video")
        people = list_people(path, thumbs=tmp, **({"progress": report} if report else {}))
        items = [(media.read_image(p.thumbnail), f"Person {p.index} · {p.frames} frames")
                 for p in people.people if p.thumbnail]
    return items, people


def summary(people) -> str:
    if people is None:
        return ""
    if not people.people:
        return "No face found in this video."
    if len(people.people) == 1:
        return "One person in this video."
    return (f"{len(people.people)} people in this video: "
            + "; ".join(p.line() for p in people.people) + ".")


@dataclass
class Picker:
    """Gallery + a choice of one person (0 = `default_label`)."""
    gallery: gr.Gallery
    choice: gr.Radio
    note: gr.Markdown


def render_picker(label: str, elem: str, default_label: str) -> Picker:
    with gr.Accordion(label, open=True, visible=True):
        gallery = gr.Gallery(label="People found", columns=5, fit_columns=False, height=200,
                             allow_preview=False, object_fit="contain", elem_id=f"{elem}-people",
                             interactive=False)
        choice = gr.Radio([(default_label, 0)], value=0, label="Who", elem_id=f"{elem}-person")
        note = gr.Markdown(elem_id=f"{elem}-people-note")
    picker = Picker(gallery, choice, note)
    wire_picker(picker)                  # a click on a person's picture picks them
    return picker


def wire_picker(picker: Picker) -> None:
    """Clicking a person's thumbnail picks them ("Who" follows the click): tile k is Person
    k+1 when the video shows more than one person."""
    def picked(items, evt: gr.SelectData):
        n = len(items or [])
        if n < 2 or not isinstance(evt.index, int) or not 0 <= evt.index < n:
            return gr.skip()
        return gr.update(value=evt.index + 1)
    picker.gallery.select(picked, picker.gallery, picker.choice, api_visibility="private")


def pick_update(path, default_label: str, ask: str = "Pick who is replaced.",
                progress=None):
    """Outputs for a Picker after an upload: gallery, choice, note."""
    try:
        items, people = find_people(path, progress)
    except Exception as exc:              # a sentence, never a traceback
        return [], gr.update(choices=[(default_label, 0)], value=0), f"**{human_error(exc)}**"
    n = len(people.people) if people else 0
    choices = [(default_label, 0)] + ([(f"Person {k}", k) for k in range(1, n + 1)]
                                      if n > 1 else [])
    return items, gr.update(choices=choices, value=0), summary(people) + (f" {ask}" if n > 1
                                                                           else "")


def mapping_update(path, models: list[str], progress=None):
    """Quick swap after an upload: gallery, note, one dropdown update per person slot."""
    try:
        items, people = find_people(path, progress)
    except Exception as exc:
        return ([], f"**{human_error(exc)}**",
                *[gr.update(visible=False, value=NOT_SWAPPED)] * MAX_PEOPLE)
    n = len(people.people) if people else 0
    shown = n if n > 1 else 0      # one person: the model picked above is all it takes
    drops = [gr.update(visible=k < shown, choices=[NOT_SWAPPED] + models, value=NOT_SWAPPED,
                       label=f"Person {k + 1} gets")
             for k in range(MAX_PEOPLE)]
    note = summary(people)
    if shown:
        note += (" Choose a model for each person to swap (the others stay as they are); "
                 "leave all unset to swap everyone with the model picked above.")
    return (items, note, *drops)


def mapping_from(values) -> dict[int, str]:
    return {k + 1: v for k, v in enumerate(values) if v and v != NOT_SWAPPED}

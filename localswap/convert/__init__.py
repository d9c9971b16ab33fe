"""Conversion: render a video or photo with the model's swapped face. render.py holds the
streaming video converter and `convert()`; frames.py the frame operations it shares with
photos, the frame preview and live mode."""

"""Conversion: render a video or photo with the model's swapped face (see convert.py)."""

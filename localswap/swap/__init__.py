"""A swap from start to end: plan it (plan.py: the SwapJob), time it (estimate.py, from this
machine's measured speeds in speeds.py), run its stages (pipeline.py), and whether a trained
model fits a new video's person and how long adapting it takes (fit.py)."""

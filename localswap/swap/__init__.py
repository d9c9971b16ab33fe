"""A swap from start to end: plan it (plan.py: the SwapJob), time it (estimate.py, from this
machine's measured speeds in speeds.py), and run its stages (pipeline.py)."""

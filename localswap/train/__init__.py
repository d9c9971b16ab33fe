"""Training: faceset tensors -> on-device augmentation -> model step -> model dir.

models (original, localswap), losses, augment, data, step (guards), checkpoint, preview,
plateau, distributed (torchrun), memory (measured sizes for the planner), trainer (the loop).
"""

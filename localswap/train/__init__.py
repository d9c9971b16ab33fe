"""Training: faceset tensors -> on-device augmentation -> model step -> model dir.

models (original, localswap), losses, augment, data, step (guards), checkpoint, preview,
plateau, distributed (torchrun), memory (measured sizes for the planner), trainer (the loop),
the model dir it writes: manifest (the one manifest reader), detail_bank (the source's sharp
crops), init_from (a new model from another's weights), any_target (a model for any person).
"""

"""The model architectures by name: the registry the `--arch` choices (settings.py), the
model builder (models.py) and the manifest check (localswap.models.manifest) read.

    original    faceswap's 64 px "Original" autoencoder, faithful to it (a baseline)
    localswap   the scalable shared-encoder / two-decoder model with learned masks, 64-512 px
"""
ARCHS = ("original", "localswap")
# Resolutions the localswap model takes (halving them lands on a 4..7 px bottleneck).
RESOLUTIONS = (64, 96, 128, 160, 192, 224, 256, 320, 384, 448, 512)

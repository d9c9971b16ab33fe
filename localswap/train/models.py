"""Face-swap autoencoders: one shared encoder, one decoder per identity.

Training teaches decoder A to rebuild faces of A and decoder B faces of B from the same
encoder; the swap is decoder B applied to the encoding of an A face.

Every model has the same interface:
    model(a, b) -> (rgb_a, mask_a, rgb_b, mask_b)   one call per training step (DDP-friendly)
    model.encode(x) -> z ; model.decode(z, "a"|"b") -> (rgb, mask)
Inputs and outputs are float NCHW in [0, 1] (channels_last memory); `mask` is None when the
model does not learn one. Plain torch.nn: autocast-safe, no custom kernels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from localswap.choices import ARCHS, RESOLUTIONS

DEFAULT_WIDTH = {"original": 128, "localswap": 64}


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class Down(nn.Module):
    """Strided conv + LeakyReLU (faceswap's Conv2DBlock)."""

    def __init__(self, cin: int, cout: int, kernel: int = 5):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=2, padding=kernel // 2)

    def forward(self, x):
        return _lrelu(self.conv(x))


class Up(nn.Module):
    """Conv to 4x channels, LeakyReLU, pixel shuffle: doubles the size (faceswap's UpscaleBlock)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 4, 3, padding=1)

    def forward(self, x):
        return F.pixel_shuffle(_lrelu(self.conv(x)), 2)

    def icnr_(self) -> None:
        """ICNR (Aitken et al. 2017): the four sub-pixel kernels of each output channel start
        equal, so the upscale starts as nearest-neighbour and not as a checkerboard."""
        w = self.conv.weight
        cout = w.shape[0] // 4
        base = torch.empty(cout, *w.shape[1:], dtype=w.dtype, device=w.device)
        nn.init.kaiming_uniform_(base, nonlinearity="relu")
        with torch.no_grad():
            w.copy_(base.repeat_interleave(4, dim=0))


class Res(nn.Module):
    """x + conv(lrelu(conv(x))), then LeakyReLU (the DeepFaceLab decoder block)."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return F.leaky_relu(x + self.conv2(_lrelu(self.conv1(x))), 0.2)


class Dense(nn.Module):
    """Flatten -> Linear -> Linear -> reshape to (ch, side, side): the bottleneck."""

    def __init__(self, cin: int, side_in: int, dims: int, ch: int, side_out: int):
        super().__init__()
        self.fc1 = nn.Linear(cin * side_in * side_in, dims)
        self.fc2 = nn.Linear(dims, ch * side_out * side_out)
        self.shape = (ch, side_out, side_out)

    def forward(self, x):
        x = self.fc2(self.fc1(x.flatten(1)))
        return x.view(x.shape[0], *self.shape).contiguous(memory_format=torch.channels_last)


class Decoder(nn.Module):
    def __init__(self, blocks: list[nn.Module], ch: int, learn_mask: bool, rgb_kernel: int = 5):
        super().__init__()
        self.blocks = nn.Sequential(*blocks)
        self.rgb = nn.Conv2d(ch, 3, rgb_kernel, padding=rgb_kernel // 2)
        self.mask = nn.Conv2d(ch, 1, 3, padding=1) if learn_mask else None

    def forward(self, z, guide=None):
        x = self.blocks(z)
        return self.head(x)

    def head(self, x):
        # Sigmoid in float32: stable under fp16/bf16 autocast.
        rgb = torch.sigmoid(self.rgb(x).float())
        mask = torch.sigmoid(self.mask(x).float()) if self.mask is not None else None
        return rgb, mask


class GuidedDecoder(Decoder):
    """A decoder whose every upscale, and its output head, also sees the expression map
    (lids, brows, lips as lines, eye openings and inner mouth filled; see
    faces.landmarks.expression_map) at its own resolution.
    Where the lids and lips are is drawn for the decoder instead of squeezed through the
    bottleneck, so the swapped face opens its eyes and mouth when the target does."""

    def __init__(self, stages: list[tuple[int, int]], ch: int, learn_mask: bool):
        nn.Module.__init__(self)
        self.res = nn.ModuleList(Res(cin) for cin, _ in stages)
        self.up = nn.ModuleList(Up(cin + 1, cout) for cin, cout in stages)
        self.rgb = nn.Conv2d(ch + 1, 3, 5, padding=2)
        self.mask = nn.Conv2d(ch + 1, 1, 3, padding=1) if learn_mask else None

    def forward(self, z, guide=None):
        if guide is None:
            raise ValueError("this model needs the expression map of each face")
        x = z
        for res, up in zip(self.res, self.up):
            x = res(x)
            g = F.adaptive_avg_pool2d(guide.to(x.dtype), x.shape[-2:])
            x = up(torch.cat([x, g], 1))
        return self.head(torch.cat([x, guide.to(x.dtype)], 1))


class SwapModel(nn.Module):
    arch = ""
    guided = False
    hides = False       # the encoder's input has its eyes and mouth hidden (train.hide)

    def __init__(self):
        super().__init__()
        self.encoder: nn.Module
        self.decoder_a: nn.Module
        self.decoder_b: nn.Module

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.contiguous(memory_format=torch.channels_last))

    def decode(self, z: torch.Tensor, side: str, guide: torch.Tensor | None = None):
        return (self.decoder_a if side == "a" else self.decoder_b)(z, guide)

    @property
    def learns_mask(self) -> bool:
        return self.decoder_a.mask is not None

    def forward(self, a: torch.Tensor, b: torch.Tensor, guide_a: torch.Tensor | None = None,
                guide_b: torch.Tensor | None = None):
        # One encoder pass for both identities: larger, faster convolutions.
        za, zb = self.encode(torch.cat([a, b])).split([a.shape[0], b.shape[0]])
        rgb_a, mask_a = self.decoder_a(za, guide_a)
        rgb_b, mask_b = self.decoder_b(zb, guide_b)
        return rgb_a, mask_a, rgb_b, mask_b

    def _init_weights(self) -> None:
        # Keras defaults the reference models were tuned with: he_uniform convs, glorot dense.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Up):
                m.icnr_()


class Original(SwapModel):
    """deepfakes/faceswap "Original", 64 px. With width=128 the layers are exactly:
    encoder 5x5/2 convs 128-256-512-1024, dense 1024, dense 4x4x1024, upscale 512;
    decoders upscale 256-128-64, 5x5 conv to RGB, sigmoid. `width` scales it for tests."""
    arch = "original"

    def __init__(self, width: int = 128, learn_mask: bool = False):
        super().__init__()
        w = width
        self.resolution = 64
        self.encoder = nn.Sequential(
            Down(3, w), Down(w, 2 * w), Down(2 * w, 4 * w), Down(4 * w, 8 * w),
            Dense(8 * w, 4, 8 * w, 8 * w, 4), Up(8 * w, 4 * w))

        def decoder():
            return Decoder([Up(4 * w, 2 * w), Up(2 * w, w), Up(w, w // 2)], w // 2, learn_mask)

        self.decoder_a, self.decoder_b = decoder(), decoder()
        self._init_weights()


def bottleneck(resolution: int) -> tuple[int, int]:
    """(halvings, side) so that resolution / 2**halvings = side lies in 4..7."""
    d, side = 0, resolution
    while side >= 8 and side % 2 == 0:
        side //= 2
        d += 1
    if not 4 <= side <= 7 or d < 4:
        raise ValueError(f"resolution {resolution} is not one of {RESOLUTIONS}")
    return d, side


class LocalSwap(SwapModel):
    """The scalable default: strided-conv encoder with residual blocks at low resolution, a dense
    bottleneck, and per-identity decoders of residual blocks + pixel-shuffle upscales that end in
    an RGB and a learned-mask head. Channels at 1/2**k of the resolution: width*min(2**(k-1), 8)."""
    arch = "localswap"

    def __init__(self, resolution: int = 128, width: int = 64, guided: bool = False,
                 hides: bool = False):
        super().__init__()
        d, side = bottleneck(resolution)
        self.resolution = resolution
        self.guided, self.hides = guided, guided and hides
        ch = [max(8, width // 2)] + [width * min(2 ** (k - 1), 8) for k in range(1, d + 1)]
        enc: list[nn.Module] = []
        for k in range(1, d + 1):
            enc.append(Down(ch[k - 1] if k > 1 else 3, ch[k], 5 if k == 1 else 3))
            if resolution >> k <= 16:          # residual blocks where they are cheap
                enc.append(Res(ch[k]))
        dims = min(1024, 8 * width)
        enc += [Dense(ch[d], side, dims, ch[d], side), Up(ch[d], ch[d - 1])]
        self.encoder = nn.Sequential(*enc)

        def decoder():
            if guided:
                return GuidedDecoder([(ch[k], ch[k - 1]) for k in range(d - 1, 0, -1)], ch[0],
                                     learn_mask=True)
            blocks: list[nn.Module] = []
            for k in range(d - 1, 0, -1):
                blocks += [Res(ch[k]), Up(ch[k], ch[k - 1])]
            return Decoder(blocks, ch[0], learn_mask=True)

        self.decoder_a, self.decoder_b = decoder(), decoder()
        self._init_weights()


def build_model(arch: str, resolution: int, width: int = 0,
                channels_last: bool = True, guided: bool = False, hides: bool = False
                ) -> SwapModel:
    """A fresh model (channels_last memory by default); width 0 = the architecture's default."""
    width = width or DEFAULT_WIDTH[arch]
    if arch == "original":
        if resolution != 64:
            raise ValueError("the original model is 64 px only")
        model = Original(width)
    elif arch == "localswap":
        model = LocalSwap(resolution, width, guided, hides)
    else:
        raise ValueError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)}")
    return model.to(memory_format=torch.channels_last) if channels_last else model


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


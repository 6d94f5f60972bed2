"""The FAN-style hourglass network of Sanchez-Lozano et al. (BMVC 2018).

With its default configuration :class:`AUHourglass` has exactly the module layout of the
published checkpoint ``AUdetector.pth.tar`` (keys without the ``module.`` prefix), so that
file's state dict loads into it strictly and the network computes what the release computes:

* stem: ``conv1`` (7x7, stride 2) + ``bn1`` + ReLU, ``conv2`` bottleneck, 2x2 max-pool,
  ``conv3`` and ``conv4`` bottlenecks (N x 3 x 256 x 256 -> N x C x 64 x 64);
* per stack ``i``: hourglass ``m{i}``, bottleneck ``top_m_{i}``, ``conv_last{i}`` +
  ``bn_end{i}`` + ReLU, and ``l{i}`` (1x1 convolution to one map per AU);
* between stacks: ``bl{i}`` and ``al{i}`` feed the features and the maps to the next stack.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = [
    "AUHourglass",
    "Bottleneck",
    "DeployableNet",
    "Hourglass",
    "fuse_batchnorm",
    "mirror_average",
    "network_input",
    "shift_average",
]

#: The shift test's readings, ``(dx, dy)`` in map pixels: the face as registered, then moved
#: one map pixel right, left, down and up.
SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


def network_input(crops: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The network's input from registered crops: the one place input scaling happens.

    ``(N, S, S, 3)`` uint8 RGB crops (NHWC, as images are stored) become ``(N, 3, S, S)``
    ``dtype`` values in [0, 1] (divided by 255, no mean subtraction: ``method.md`` §1) in
    channels-last memory layout, a free view of the NHWC data. ``(S, S, 3)`` gives ``(3, S, S)``.
    """
    if crops.dtype != torch.uint8:
        raise TypeError(f"crops must be uint8 RGB, got {crops.dtype}")
    return crops.movedim(-1, -3).to(dtype).div(255.0)


def mirror_average(run, inputs, width_axis: int, stride: int = 1):
    """The flip test: ``run``'s maps of ``inputs`` averaged with those of their mirror images,
    mirrored back (MMPose's ``flip_test`` for heatmap models).

    ``run`` is called once, on the N inputs followed by their N mirror images, so a batch
    engine sees one batch. No map channel is swapped: every AU of the catalogue has its
    centres on both sides of the face or on its midline (:mod:`aumaps.aus`), so an AU's map
    of a mirrored face is its map mirrored, as training's flip augmentation assumes.

    The two readings are aligned to the map pixel: map pixel i stands for crop column
    ``stride · i`` (the codec's ``round(x / stride)``), so a map mirrored about its centre,
    i → W − 1 − i, is the map of the crop mirrored about column (S − stride) / 2, not about its
    centre (S − 1) / 2. The inputs are mirrored so (x → S − stride − x; the ``stride − 1``
    columns this leaves at the edge repeat the last one); a plain flip would put the two
    readings (stride − 1) / stride of a map pixel apart and blur every peak.

    Args:
        run: ``inputs -> (N, A, H, W) maps`` (a NumPy or torch callable).
        inputs: ``N`` crops, a NumPy array or a tensor.
        width_axis: the inputs' image-width axis (2 for ``(N, S, S, 3)`` crops, 3 for
            ``(N, 3, S, S)`` network input).
        stride: crop pixels per map pixel (the codec's ``stride``), a whole number.

    Returns:
        ``(N, A, H, W)`` maps of the type ``run`` returns.
    """
    if stride != int(stride) or stride < 1:
        raise ValueError(f"mirror_average needs a whole stride (crop pixels per map pixel), got {stride}")
    n, shift, size = len(inputs), int(stride) - 1, inputs.shape[width_axis]
    columns = list(range(shift, size)) + [size - 1] * shift  # mirrored column x holds column S - stride - x
    if isinstance(inputs, torch.Tensor):
        mirrored = inputs.flip(width_axis).index_select(width_axis, torch.tensor(columns, device=inputs.device))
        maps = run(torch.cat([inputs, mirrored]))
        return (maps[:n] + maps[n:].flip(-1)) / 2
    mirrored = np.take(np.flip(inputs, width_axis), columns, axis=width_axis)
    maps = run(np.concatenate([inputs, mirrored]))
    return (maps[:n] + maps[n:, ..., ::-1]) / 2


def _moved(x, axis: int, by: int):
    """``x`` with its content moved ``by`` places along ``axis`` (element i holds element
    i − by), the edge repeated into the places left empty; NumPy or torch."""
    size = x.shape[axis]
    index = np.clip(np.arange(size) - by, 0, size - 1)
    if isinstance(x, torch.Tensor):
        return x.index_select(axis, torch.as_tensor(index, device=x.device))
    return np.take(x, index, axis=axis)


def shift_average(run, inputs, width_axis: int, stride: int = 1, shifts=SHIFTS):
    """The shift test: ``run``'s maps of ``inputs`` moved by whole map pixels, each moved back,
    averaged (test-time augmentation over the registration, as :func:`mirror_average` is
    over the mirror).

    A network that reads crops registered from noisy landmarks sees each face a little off
    where training put it; the mean of its maps over small moves of the crop is less
    sensitive to that. Each move is ``stride`` crop pixels per map pixel, so the maps move
    back exactly, pixel for pixel; the rows and columns a move uncovers repeat the edge (of
    the crop, then of the maps). ``run`` is called once, on all the moved inputs in one batch.

    Args:
        run: ``inputs -> (N, A, H, W) maps`` (a NumPy or torch callable; with the flip test,
            :func:`mirror_average` of the network).
        inputs: ``N`` crops, a NumPy array or a tensor, height on the axis before ``width_axis``.
        width_axis: the inputs' image-width axis (2 for ``(N, S, S, 3)`` crops, 3 for
            ``(N, 3, S, S)`` network input).
        stride: crop pixels per map pixel (the codec's ``stride``), a whole number.
        shifts: the readings, ``(dx, dy)`` in map pixels (:data:`SHIFTS`).

    Returns:
        ``(N, A, H, W)`` maps of the type ``run`` returns.
    """
    if stride != int(stride) or stride < 1:
        raise ValueError(f"shift_average needs a whole stride (crop pixels per map pixel), got {stride}")
    stride, n = int(stride), len(inputs)
    moved = [_moved(_moved(inputs, width_axis, dx * stride), width_axis - 1, dy * stride) for dx, dy in shifts]
    tensor = isinstance(inputs, torch.Tensor)
    maps = run(torch.cat(moved) if tensor else np.concatenate(moved))
    back = [_moved(_moved(maps[k * n : (k + 1) * n], -1, -dx), -2, -dy) for k, (dx, dy) in enumerate(shifts)]
    return (torch.stack(back) if tensor else np.stack(back)).mean(0)


class Bottleneck(nn.Module):
    """Residual bottleneck block B(in, out) of the published checkpoint.

    ``conv1`` 1x1 in->out/2, ``bn1``, ReLU, ``conv2`` 3x3 out/2->out/2, ``bn2``, ReLU,
    ``conv3`` 1x1 out/2->out, ``bn3``; the input (through ``downsample``, a 1x1 convolution
    and a BatchNorm, when in != out) is added, then ReLU. No convolution has a bias.

    Maps N x in x H x W to N x out x H x W.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = out_channels // 2
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Sequential | None = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x in x H x W -> N x out x H x W."""
        residual = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + residual)


class Hourglass(nn.Module):
    """One hourglass of the given depth, every block a B(width, width).

    At level L (depth down to 1) the upper branch is ``b1_L`` on the input; the lower branch
    max-pools 2x2, applies ``b2_L``, recurses to level L-1 (at level 1: ``b2_plus_1``),
    applies ``b3_L`` and upsamples x2 (nearest); the two branches are summed.

    Maps N x width x H x W to the same shape; H and W must be divisible by 2**depth.
    """

    def __init__(self, depth: int, width: int) -> None:
        super().__init__()
        self.depth = depth
        for level in range(depth, 0, -1):
            self.add_module(f"b1_{level}", Bottleneck(width, width))
            self.add_module(f"b2_{level}", Bottleneck(width, width))
            self.add_module(f"b3_{level}", Bottleneck(width, width))
        self.add_module("b2_plus_1", Bottleneck(width, width))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        upper = getattr(self, f"b1_{level}")(x)
        lower = getattr(self, f"b2_{level}")(F.max_pool2d(x, 2, stride=2))
        if level > 1:
            lower = self._level(level - 1, lower)
        else:
            lower = self.b2_plus_1(lower)
        lower = getattr(self, f"b3_{level}")(lower)
        return upper + F.interpolate(lower, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """N x width x H x W -> N x width x H x W."""
        return self._level(self.depth, x)


class AUHourglass(nn.Module):
    """Stacked-hourglass heatmap regressor: one 64 x 64 map per Action Unit.

    Args:
        num_aus: A, the number of output maps (one per AU).
        num_stacks: number of hourglasses; each adds an output (intermediate supervision).
        depth: number of 2x2 poolings inside each hourglass.
        width: channels of ``conv4`` and the hourglasses; the stem's ``conv2``/``conv3``
            use ``width // 2``. ``width=256`` with the other defaults is the published
            BMVC 2018 layout (about 3.42 M parameters).

    Input: N x 3 x 256 x 256 float RGB in [0, 1] (no mean subtraction). Any H x W divisible
    by 4 * 2**depth works; the maps are H/4 x W/4.

    ``forward(x)`` returns a list of ``num_stacks`` tensors, each N x A x 64 x 64, in stack
    order; the last one is the prediction, the others exist for intermediate supervision.
    """

    def __init__(self, num_aus: int = 5, num_stacks: int = 1, depth: int = 4, width: int = 256) -> None:
        super().__init__()
        self.config = {"num_aus": num_aus, "num_stacks": num_stacks, "depth": depth, "width": width}
        self.num_stacks = num_stacks
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = Bottleneck(64, width // 2)
        self.conv3 = Bottleneck(width // 2, width // 2)
        self.conv4 = Bottleneck(width // 2, width)
        for i in range(num_stacks):
            self.add_module(f"m{i}", Hourglass(depth, width))
            self.add_module(f"top_m_{i}", Bottleneck(width, width))
            self.add_module(f"conv_last{i}", nn.Conv2d(width, width, kernel_size=1))
            self.add_module(f"bn_end{i}", nn.BatchNorm2d(width))
            self.add_module(f"l{i}", nn.Conv2d(width, num_aus, kernel_size=1))
            if i < num_stacks - 1:
                self.add_module(f"bl{i}", nn.Conv2d(width, width, kernel_size=1))
                self.add_module(f"al{i}", nn.Conv2d(num_aus, width, kernel_size=1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """N x 3 x 256 x 256 in [0, 1] -> list of ``num_stacks`` N x A x 64 x 64 maps."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(self.conv2(x), 2, stride=2)
        previous = self.conv4(self.conv3(x))
        outputs = []
        for i in range(self.num_stacks):
            ll = getattr(self, f"top_m_{i}")(getattr(self, f"m{i}")(previous))
            ll = F.relu(getattr(self, f"bn_end{i}")(getattr(self, f"conv_last{i}")(ll)))
            out = getattr(self, f"l{i}")(ll)
            outputs.append(out)
            if i < self.num_stacks - 1:
                previous = previous + getattr(self, f"bl{i}")(ll) + getattr(self, f"al{i}")(out)
        return outputs


def _conv_bn_pairs(model: AUHourglass) -> list[tuple[str, str]]:
    """Qualified names of every (convolution, BatchNorm that directly follows it) pair."""
    pairs = [("conv1", "bn1")]
    pairs += [(f"conv_last{i}", f"bn_end{i}") for i in range(model.num_stacks)]
    for name, module in model.named_modules():
        if isinstance(module, Bottleneck):
            pairs += [(f"{name}.conv{k}", f"{name}.bn{k}") for k in (1, 2, 3)]
            if module.downsample is not None:
                pairs.append((f"{name}.downsample.0", f"{name}.downsample.1"))
    return pairs


def _replace(model: nn.Module, qualified_name: str, module: nn.Module) -> None:
    parent_name, _, leaf = qualified_name.rpartition(".")
    setattr(model.get_submodule(parent_name), leaf, module)


def fuse_batchnorm(model: AUHourglass) -> AUHourglass:
    """Return an eval-mode copy of ``model`` with every BatchNorm folded into its convolution.

    Each convolution becomes one with bias that computes conv + BN (running statistics),
    and the BatchNorm is replaced by ``nn.Identity``. The copy gives the same output as
    ``model.eval()`` up to float rounding (~1e-5) and is for inference only: its state dict
    no longer has the BatchNorm keys. ``model`` itself is left unchanged; a model already
    folded comes back as a copy.
    """
    fused = copy.deepcopy(model).eval()
    for conv_name, bn_name in _conv_bn_pairs(fused):
        conv = fused.get_submodule(conv_name)
        bn = fused.get_submodule(bn_name)
        if not isinstance(bn, nn.BatchNorm2d):  # folded already
            continue
        _replace(fused, conv_name, fuse_conv_bn_eval(conv, bn))
        _replace(fused, bn_name, nn.Identity())
    return fused


class DeployableNet(nn.Module):
    """The network as deployed: uint8 NHWC crops in, the last stack's maps out.

    ``forward`` takes ``(N, S, S, 3)`` uint8 RGB crops, scales them with
    :func:`network_input` (in ``dtype``), runs ``model`` and returns its last stack's
    ``(N, A, S/4, S/4)`` maps as float32. Every inference engine runs this module (eager,
    traced, or exported to ONNX), so input scaling is the same everywhere.
    """

    def __init__(self, model: AUHourglass, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.model = model
        self.dtype = dtype

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """``(N, S, S, 3)`` uint8 -> ``(N, A, S/4, S/4)`` float32."""
        return self.model(network_input(crops, self.dtype))[-1].float()

"""The BMVC 2018 release, written from its description in ``method.md`` §4 and not from
``aumaps``: the state-dict layout (key -> shape) and the forward computation with
``torch.nn.functional`` only. Tests compare aumaps against these, so a change that would
break the published checkpoint or what it computes fails.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------
# The published layout, from its description.


def _bn_shapes(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{name}": (channels,) for name in ("weight", "bias", "running_mean", "running_var")}


def _bottleneck_shapes(prefix: str, cin: int, cout: int) -> dict[str, tuple[int, ...]]:
    mid = cout // 2
    shapes = {f"{prefix}.conv1.weight": (mid, cin, 1, 1)}
    shapes |= _bn_shapes(f"{prefix}.bn1", mid)
    shapes[f"{prefix}.conv2.weight"] = (mid, mid, 3, 3)
    shapes |= _bn_shapes(f"{prefix}.bn2", mid)
    shapes[f"{prefix}.conv3.weight"] = (cout, mid, 1, 1)
    shapes |= _bn_shapes(f"{prefix}.bn3", cout)
    if cin != cout:
        shapes[f"{prefix}.downsample.0.weight"] = (cout, cin, 1, 1)
        shapes |= _bn_shapes(f"{prefix}.downsample.1", cout)
    return shapes


def published_layout(
    num_aus: int = 5, num_stacks: int = 1, depth: int = 4, width: int = 256
) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the release's state dict (no ``module.``, no ``num_batches_tracked``);
    the defaults are the published file, other values follow the same naming."""
    half = width // 2
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), "conv1.bias": (64,)}
    shapes |= _bn_shapes("bn1", 64)
    shapes |= _bottleneck_shapes("conv2", 64, half)
    shapes |= _bottleneck_shapes("conv3", half, half)
    shapes |= _bottleneck_shapes("conv4", half, width)
    for i in range(num_stacks):
        for level in range(depth, 0, -1):
            for branch in ("b1", "b2", "b3"):
                shapes |= _bottleneck_shapes(f"m{i}.{branch}_{level}", width, width)
        shapes |= _bottleneck_shapes(f"m{i}.b2_plus_1", width, width)
        shapes |= _bottleneck_shapes(f"top_m_{i}", width, width)
        shapes |= {f"conv_last{i}.weight": (width, width, 1, 1), f"conv_last{i}.bias": (width,)}
        shapes |= _bn_shapes(f"bn_end{i}", width)
        shapes |= {f"l{i}.weight": (num_aus, width, 1, 1), f"l{i}.bias": (num_aus,)}
        if i < num_stacks - 1:
            shapes |= {f"bl{i}.weight": (width, width, 1, 1), f"bl{i}.bias": (width,)}
            shapes |= {f"al{i}.weight": (width, num_aus, 1, 1), f"al{i}.bias": (width,)}
    return shapes


def random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the given shapes with non-trivial BatchNorm statistics (variance
    > 0) and fan-in-scaled convolutions, so activations stay of order 1."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith("running_var"):
            value = 0.5 + torch.rand(shape, generator=gen)
        elif key.endswith("running_mean"):
            value = 0.2 * torch.randn(shape, generator=gen)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            value = torch.randn(shape, generator=gen) / fan_in**0.5
        elif ".bn" in key or key.startswith("bn") or "downsample.1" in key:
            value = (1.0 if key.endswith("weight") else 0.0) + 0.1 * torch.randn(shape, generator=gen)
        else:  # convolution bias
            value = 0.1 * torch.randn(shape, generator=gen)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------
# Reference forward, with torch.nn.functional only.


def _ref_bn(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(
        x,
        sd[f"{prefix}.running_mean"],
        sd[f"{prefix}.running_var"],
        sd[f"{prefix}.weight"],
        sd[f"{prefix}.bias"],
        training=False,
        eps=1e-5,
    )


def _ref_bottleneck(sd: dict[str, torch.Tensor], prefix: str, x: torch.Tensor) -> torch.Tensor:
    out = F.relu(_ref_bn(sd, f"{prefix}.bn1", F.conv2d(x, sd[f"{prefix}.conv1.weight"])))
    out = F.relu(_ref_bn(sd, f"{prefix}.bn2", F.conv2d(out, sd[f"{prefix}.conv2.weight"], padding=1)))
    out = _ref_bn(sd, f"{prefix}.bn3", F.conv2d(out, sd[f"{prefix}.conv3.weight"]))
    if f"{prefix}.downsample.0.weight" in sd:
        x = _ref_bn(sd, f"{prefix}.downsample.1", F.conv2d(x, sd[f"{prefix}.downsample.0.weight"]))
    return F.relu(out + x)


def _ref_hourglass(sd: dict[str, torch.Tensor], prefix: str, level: int, x: torch.Tensor) -> torch.Tensor:
    upper = _ref_bottleneck(sd, f"{prefix}.b1_{level}", x)
    lower = _ref_bottleneck(sd, f"{prefix}.b2_{level}", F.max_pool2d(x, kernel_size=2, stride=2))
    if level > 1:
        lower = _ref_hourglass(sd, prefix, level - 1, lower)
    else:
        lower = _ref_bottleneck(sd, f"{prefix}.b2_plus_1", lower)
    lower = _ref_bottleneck(sd, f"{prefix}.b3_{level}", lower)
    return upper + F.interpolate(lower, scale_factor=2, mode="nearest")


def reference_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, num_stacks: int, depth: int) -> list[torch.Tensor]:
    """The release's computation, read straight off a state dict (keys without ``module.``)."""
    x = F.conv2d(x, sd["conv1.weight"], sd["conv1.bias"], stride=2, padding=3)
    x = F.relu(_ref_bn(sd, "bn1", x))
    x = _ref_bottleneck(sd, "conv2", x)
    x = F.max_pool2d(x, kernel_size=2, stride=2)
    x = _ref_bottleneck(sd, "conv3", x)
    previous = _ref_bottleneck(sd, "conv4", x)
    outputs = []
    for i in range(num_stacks):
        ll = _ref_bottleneck(sd, f"top_m_{i}", _ref_hourglass(sd, f"m{i}", depth, previous))
        ll = F.relu(_ref_bn(sd, f"bn_end{i}", F.conv2d(ll, sd[f"conv_last{i}.weight"], sd[f"conv_last{i}.bias"])))
        out = F.conv2d(ll, sd[f"l{i}.weight"], sd[f"l{i}.bias"])
        outputs.append(out)
        if i < num_stacks - 1:
            previous = (
                previous
                + F.conv2d(ll, sd[f"bl{i}.weight"], sd[f"bl{i}.bias"])
                + F.conv2d(out, sd[f"al{i}.weight"], sd[f"al{i}.bias"])
            )
    return outputs

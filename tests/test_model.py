"""The hourglass network against the published layout and an independent reference
(``published_reference.py``, written from the release's description, not from aumaps)."""

from __future__ import annotations

import torch
from torch import nn

from aumaps.model import AUHourglass, fuse_batchnorm
from aumaps.weights import load_checkpoint
from published_reference import published_layout, random_state_dict, reference_forward


def _layout_of(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def test_default_model_has_the_published_layout() -> None:
    model = AUHourglass()
    assert model.config == {"num_aus": 5, "num_stacks": 1, "depth": 4, "width": 256}
    assert _layout_of(model) == published_layout()


def test_multi_stack_layout_follows_the_same_naming() -> None:
    model = AUHourglass(num_aus=3, num_stacks=3, depth=2, width=64)
    assert _layout_of(model) == published_layout(num_aus=3, num_stacks=3, depth=2, width=64)
    assert "bl1.weight" in model.state_dict() and "bl2.weight" not in model.state_dict()


def test_parameter_count_is_the_published_one() -> None:
    model = AUHourglass()
    n_params = sum(p.numel() for p in model.parameters())
    # From the description: every shape except the BatchNorm running statistics.
    n_described = sum(
        torch.Size(s).numel() for k, s in published_layout().items() if not k.endswith(("running_mean", "running_var"))
    )
    assert n_params == n_described == 3_416_197
    assert abs(n_params - 3.42e6) <= 0.01e6


def test_published_file_layout_loads_strictly_with_exact_values(tmp_path) -> None:
    state = random_state_dict(published_layout(), seed=1)
    path = tmp_path / "AUdetector.pth.tar"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 10}, path)

    ckpt = load_checkpoint(path)

    assert ckpt.kind == "official"
    assert ckpt.aus == (6, 10, 12, 14, 17)
    assert ckpt.model.config == {"num_aus": 5, "num_stacks": 1, "depth": 4, "width": 256}
    assert ckpt.card["trained_on"] == "BP4D (FERA 2015)"
    assert not ckpt.model.training
    loaded = ckpt.model.state_dict()
    assert {k for k in loaded if not k.endswith("num_batches_tracked")} == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_forward_matches_independent_reference_on_published_layout() -> None:
    state = random_state_dict(published_layout(), seed=2)
    model = AUHourglass().eval()
    model.load_state_dict(state, strict=False)
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        outputs = model(x)
        expected = reference_forward(state, x, num_stacks=1, depth=4)
    assert isinstance(outputs, list) and len(outputs) == 1
    assert outputs[0].shape == (1, 5, 64, 64)
    assert expected[0].abs().max() > 0.1  # the comparison is not between near-zero maps
    torch.testing.assert_close(outputs[0], expected[0], atol=1e-4, rtol=0)


def test_forward_matches_reference_with_several_stacks() -> None:
    config = {"num_aus": 3, "num_stacks": 2, "depth": 3, "width": 64}
    state = random_state_dict(published_layout(**config), seed=4)
    model = AUHourglass(**config).eval()
    model.load_state_dict(state, strict=False)
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        outputs = model(x)
        expected = reference_forward(state, x, num_stacks=2, depth=3)
    assert [o.shape for o in outputs] == [(2, 3, 32, 32)] * 2
    for got, want in zip(outputs, expected):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
    assert not torch.allclose(outputs[0], outputs[1])  # the second stack does refine


def test_fuse_batchnorm_gives_the_same_output_without_batchnorm() -> None:
    state = random_state_dict(published_layout(), seed=6)
    model = AUHourglass().eval()
    model.load_state_dict(state, strict=False)
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0  # original untouched
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(fused(x)[-1], model(x)[-1], atol=1e-4, rtol=0)


def test_fuse_batchnorm_several_stacks() -> None:
    config = {"num_aus": 4, "num_stacks": 2, "depth": 2, "width": 32}
    model = AUHourglass(**config)
    model.load_state_dict(random_state_dict(published_layout(**config), seed=8), strict=False)
    model.train()
    fused = fuse_batchnorm(model)
    assert model.training  # the original keeps its mode
    model.eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        for got, want in zip(fused(x), model(x)):
            torch.testing.assert_close(got, want, atol=1e-4, rtol=0)

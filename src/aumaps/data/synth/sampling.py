"""AU intensities: one random set with realistic co-occurrence (expression
:data:`PROTOTYPES` mixed with independent activations, :func:`sample_intensities`), or smooth
curves over time through such sets (:func:`intensity_curves`, eased by :func:`_eased`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ...aus import resolve_aus
from .geometry import _AU_ORDER


def _eased(keys: np.ndarray, n: int, every: int, hold: float = 0.0) -> np.ndarray:
    """``(n, D)`` values going through the ``(K, D)`` ``keys`` placed every ``every`` steps:
    each key is held for the first ``hold`` of its interval, then eases (smoothstep) into the
    next. Needs ``K > (n - 1) / every + 1``."""
    t = np.arange(n) / every
    i = np.floor(t).astype(int)
    f = np.clip((t - i - hold) / (1.0 - hold), 0.0, 1.0)
    f = (f * f * (3 - 2 * f))[:, None]
    return keys[i] * (1 - f) + keys[i + 1] * f


#: Expression prototypes: ``name → (core, optional, probability)``. ``core`` maps AUs to
#: their weight (their intensity is the expression's strength times the weight, jittered),
#: ``optional`` maps AUs to the chance that they join (at a random fraction of the strength);
#: ``probability`` is how often the prototype is drawn. The basic emotions follow the
#: EMFACS-style prototypes (happiness 6+12, sadness 1+4+15, surprise 1+2+5+26, fear
#: 1+2+4+5+20+26, anger 4+5+7+23, disgust 9+10 with 15/17); ``speech`` and ``blink`` are the
#: commonest non-emotional actions of real recordings; ``neutral`` (the commonest of all)
#: holds only traces; ``random`` has no AUs: only the independent activations that every
#: prototype receives, at a higher rate.
PROTOTYPES: dict[str, tuple[dict[int, float], dict[int, float], float]] = {
    "neutral": ({}, {}, 0.20),
    "happiness": ({6: 0.8, 12: 1.0}, {25: 0.55, 26: 0.15, 14: 0.1, 10: 0.15, 7: 0.2}, 0.12),
    "smile": ({12: 1.0}, {25: 0.35, 6: 0.2}, 0.06),
    "sadness": ({1: 0.9, 4: 0.8, 15: 1.0}, {17: 0.5, 6: 0.1}, 0.05),
    "surprise": ({1: 1.0, 2: 1.0, 5: 0.8, 26: 0.9}, {25: 0.9}, 0.05),
    "fear": ({1: 0.9, 2: 0.8, 4: 0.7, 5: 1.0, 20: 0.9, 26: 0.7}, {25: 0.8, 7: 0.3}, 0.04),
    "anger": ({4: 1.0, 5: 0.6, 7: 0.8, 23: 0.7}, {24: 0.4, 17: 0.4, 10: 0.2, 9: 0.1}, 0.05),
    "disgust": ({9: 1.0, 10: 1.0}, {17: 0.5, 15: 0.4, 4: 0.4, 25: 0.3, 7: 0.3}, 0.05),
    "contempt": ({14: 1.0}, {12: 0.3, 17: 0.25}, 0.04),
    "pain": ({4: 0.8, 6: 1.0, 7: 0.8, 10: 0.8}, {9: 0.5, 25: 0.4, 17: 0.3, 45: 0.3}, 0.03),
    "doubt": ({17: 1.0}, {14: 0.4, 24: 0.4, 15: 0.3, 23: 0.3}, 0.05),
    "speech": ({25: 1.0}, {26: 0.5, 10: 0.2, 20: 0.15, 23: 0.1}, 0.05),
    "blink": ({45: 1.0}, {6: 0.1, 12: 0.1}, 0.05),
    "random": ({}, {}, 0.16),
}

#: AUs that act on both halves of the face and can act more on one (FACS's unilateral or
#: asymmetric actions); the midline AUs 17, 23, 24, 25 and 26 act symmetrically.
_BILATERAL = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 20, 45)


def sample_intensities(
    rng: np.random.Generator,
    aus: str | Iterable[int] = "all",
    independent: float = 0.08,
) -> dict[int, float]:
    """Draw one set of AU intensities with realistic co-occurrence.

    A prototype of :data:`PROTOTYPES` is drawn and its strength (uniform on 0.3–5) is shared
    out over its AUs; then every AU is also switched on by itself with probability
    ``independent`` (three times that for the ``random`` prototype) at a uniform 0–5, keeping
    the larger value. A ``neutral`` face holds only traces (each AU below 0.8 with
    probability 0.1). A jaw drop brings lips apart with it. Values are rounded to 3 decimals
    so that what is written is what was rendered.

    Args:
        rng: Randomness.
        aus: AUs that may be active (a set name or numbers); the others are 0.
        independent: Probability of an independent activation per AU.

    Returns:
        AU number → intensity in [0, 5], for every AU of the catalogue.
    """
    allowed = set(resolve_aus(aus))
    names = list(PROTOTYPES)
    probs = np.array([PROTOTYPES[n][2] for n in names])
    name = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    core, optional, _ = PROTOTYPES[name]
    strength = rng.uniform(0.3, 5.0)
    out = dict.fromkeys(_AU_ORDER, 0.0)
    for au, weight in core.items():
        out[au] = strength * weight * rng.uniform(0.75, 1.25) + rng.normal(0.0, 0.3)
    for au, chance in optional.items():
        if rng.random() < chance:
            out[au] = strength * rng.uniform(0.2, 1.0)
    if name == "neutral":
        for au in _AU_ORDER:
            if rng.random() < 0.1:
                out[au] = rng.uniform(0.0, 0.8)
    else:
        rate = independent * (3.0 if name == "random" else 1.0)
        for au in _AU_ORDER:
            if rng.random() < rate:
                out[au] = max(out[au], rng.uniform(0.0, 5.0))
    if out[26] > 0.5:
        out[25] = max(out[25], out[26] * rng.uniform(0.6, 1.0))
    return {au: round(float(np.clip(v, 0.0, 5.0)), 3) if au in allowed else 0.0 for au, v in out.items()}


def sample_sides(rng: np.random.Generator, chance: float = 0.12) -> dict[int, tuple[float, float]]:
    """Asymmetric activations: for each AU of :data:`_BILATERAL`, with probability ``chance``,
    one side (left or right at random) acts only 0.3–0.9 as strongly as the other. The AU's
    intensity is its stronger side's, as FACS codes it.

    Returns:
        AU number → ``(left, right)`` factors, for the asymmetric AUs only (see
        :func:`~.geometry.displace_landmarks`).
    """
    sides: dict[int, tuple[float, float]] = {}
    for au in _BILATERAL:
        if rng.random() < chance:
            weak = round(float(rng.uniform(0.3, 0.9)), 3)
            sides[au] = (weak, 1.0) if rng.random() < 0.5 else (1.0, weak)
    return sides


def intensity_curves(
    rng: np.random.Generator,
    n_frames: int,
    aus: str | Iterable[int] = "all",
    keyframe_every: int = 4,
    hold: float = 0.5,
) -> dict[int, np.ndarray]:
    """Smooth AU intensity curves over ``n_frames`` frames.

    Key frames every ``keyframe_every`` frames get intensities from
    :func:`sample_intensities`; each key is held for the first ``hold`` of its interval,
    then eases into the next (smoothstep). So the curves stay in [0, 5], are exactly 0 where
    two zeros meet, and their values are spread about as the keys' are.

    Returns:
        AU number → ``(n_frames,)`` float64 intensities (3 decimals), every catalogue AU.
    """
    n_keys = (n_frames - 1) // keyframe_every + 2
    samples = [sample_intensities(rng, aus) for _ in range(n_keys)]
    keys = np.array([[sample[au] for au in _AU_ORDER] for sample in samples])
    values = np.round(_eased(keys, n_frames, keyframe_every, hold), 3)
    return {au: values[:, a] for a, au in enumerate(_AU_ORDER)}

"""The population of identities that a seed defines: identity number ``index`` is either
drawn (:func:`~.procedural.procedural_face`) or a variant of a real photo
(:func:`~.real.vary_identity`), depending on ``(seed, index)`` only (:func:`make_identity`,
:func:`neutral_faces`).
"""

from __future__ import annotations

import numpy as np

from .identity import Identity
from .procedural import procedural_face
from .real import real_faces, vary_identity


def make_identity(index: int, seed: int = 0, procedural: float = 0.5) -> Identity:
    """Identity number ``index`` of the population that ``seed`` defines.

    It depends on ``(seed, index)`` only, so identities can be made in any order or process.

    Args:
        index: Non-negative identity number; the subject id is ``f"syn{index:04d}"``.
        seed: Population seed.
        procedural: Probability that the identity is drawn (:func:`procedural_face`) rather
            than a variant of a real photo (:func:`vary_identity`); real photos that cannot
            be loaded make it 1.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 0x1D]))
    subject = f"syn{index:04d}"
    bases = real_faces() if procedural < 1.0 else ()
    if not bases or rng.random() < procedural:
        return procedural_face(rng, subject)
    return vary_identity(bases[int(rng.integers(len(bases)))], rng, subject)


def neutral_faces(n: int, seed: int = 0, procedural: float = 0.5) -> list[Identity]:
    """``n`` distinct identities: :func:`make_identity` for indices ``0..n-1``."""
    return [make_identity(i, seed, procedural) for i in range(n)]

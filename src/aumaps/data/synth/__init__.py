"""Synthetic faces with known Action Unit intensities and known AU locations.

No licensed AU data set ships with aumaps, so this package makes its own: faces whose AU
intensities are chosen, not annotated, and whose 68 landmarks are known exactly after every
deformation. It serves to train small demonstration models and to test the pipeline end to
end.

How a sample is made (all in a 256×256 *canvas* that holds the whole head, :mod:`.canvas`):

1. **Identity** (:class:`Identity` in :mod:`.identity`; :func:`make_identity`,
   :func:`neutral_faces` in :mod:`.population`): a neutral face image with its 68
   landmarks. Either a variant of a real photo that ships with the dependencies
   (:mod:`.real`: :func:`real_faces`: scikit-image's astronaut and matplotlib's Grace Hopper,
   found once by dlib) with its face shape warped, its skin tone changed and possibly
   mirrored (:func:`vary_identity`), or a face drawn from scratch (:mod:`.procedural`:
   :func:`procedural_face`).
2. **AU geometry** (:mod:`.geometry`: :data:`DISPLACEMENTS`, :func:`displace_landmarks`):
   each AU moves a few landmarks by a fixed vector per intensity unit, in inter-ocular
   distances (IOD) along the face's own axes; several AUs add up. The image follows through a
   smooth thin-plate-spline warp (:mod:`.warp`) through the landmarks and a fixed ring of
   anchors around the head.
3. **AU appearance** (:mod:`.appearance`: furrows, wrinkles, dimples, bulges, the mouth's
   interior): blurred dark and light strokes whose strength grows with the intensity, so that
   intensity is not readable from the landmarks alone and AUs that share centres (AU12/AU14)
   look different.
4. **Nuisances** (:mod:`.nuisance`: :class:`Nuisance`, :func:`sample_nuisance`): background
   replacement, lighting gradient, colour cast, contrast and gamma, then a head pose (roll,
   yaw- and pitch-like plane rotation, scale, shift) applied to image and landmarks together,
   then blur, noise and JPEG compression.

:mod:`.rendering` puts these together (:func:`render`, :func:`render_sequence`).
Intensities follow expression prototypes mixed with independent activations
(:mod:`.sampling`: :func:`sample_intensities`) or smooth curves over time
(:func:`intensity_curves`, :func:`render_sequence`); :func:`make_dataset` (:mod:`.dataset`)
writes a data set with a manifest in the format of ``docs/data-format.md``.

Modules, each importing only from those listed before it:

- :mod:`.canvas`: the canvas's size, where a canonical face sits in it, drawing primitives;
- :mod:`.geometry`: AU landmark displacements, the face's axes, :func:`displace_landmarks`;
- :mod:`.warp`: the thin-plate-spline warp of an image through moved landmarks;
- :mod:`.sampling`: AU intensities (prototypes) and their smooth curves over time;
- :mod:`.identity`: :class:`Identity` and the head outline, shape and skin variation that all
  faces share;
- :mod:`.real`: identities from the bundled photos and their variants;
- :mod:`.procedural`: identities drawn from scratch;
- :mod:`.population`: the identities a seed defines (:func:`make_identity`,
  :func:`neutral_faces`);
- :mod:`.appearance`: AU appearance strokes and the mouth's interior;
- :mod:`.nuisance`: scene, camera and head-pose nuisances;
- :mod:`.rendering`: :func:`render` and :func:`render_sequence`;
- :mod:`.dataset`: :func:`make_dataset` and its worker jobs.

Limitations, by construction: the real base photos are not truly neutral (the astronaut's
broad smile is undone geometrically and her mouth painted shut, but traces remain, and
count as intensity 0); identities derived from one photo share its skin texture; drawn faces
are cartoons; AU geometry is symmetric; head pose is a plane's, not a head's. The astronaut
and the background photos come from scikit-image's bundled data: without scikit-image, real
identities are Grace Hopper's variants only and backgrounds are synthetic.
"""

from __future__ import annotations

from .canvas import CANVAS
from .dataset import make_dataset
from .geometry import DISPLACEMENTS, displace_landmarks
from .identity import Identity
from .looks import Fringe, Glasses, Look, sample_look
from .nuisance import Nuisance, sample_nuisance
from .population import make_identity, neutral_faces
from .procedural import procedural_face
from .real import REAL_FACES, real_faces, vary_identity
from .rendering import render, render_sequence
from .sampling import PROTOTYPES, intensity_curves, sample_intensities, sample_sides
from .warp import _warp_image  # noqa: F401 - private, used by tests/test_synth.py

__all__ = [
    "CANVAS",
    "DISPLACEMENTS",
    "PROTOTYPES",
    "Fringe",
    "Glasses",
    "Identity",
    "Look",
    "Nuisance",
    "REAL_FACES",
    "displace_landmarks",
    "intensity_curves",
    "make_dataset",
    "make_identity",
    "neutral_faces",
    "procedural_face",
    "real_faces",
    "render",
    "render_sequence",
    "sample_intensities",
    "sample_look",
    "sample_nuisance",
    "sample_sides",
    "vary_identity",
]

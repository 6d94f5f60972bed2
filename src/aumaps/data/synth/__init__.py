"""Synthetic faces with known Action Unit intensities and known AU locations.

No licensed AU data set ships with aumaps, so this package makes its own: faces whose AU
intensities are chosen, not annotated, and whose 68 landmarks are known exactly after every
deformation. It trains the bundled 17-AU model (OpenFace's AU set) and tests the pipeline end
to end. ``docs/synthetic.md`` shows each part with rendered examples (``docs/synthetic.py``).

How a sample is made (all in a 256×256 *canvas* that holds the whole head, :mod:`.canvas`):

1. **Identity** (:class:`Identity` in :mod:`.identity`; :func:`make_identity`,
   :func:`neutral_faces` in :mod:`.population`): a neutral face image with its 68
   landmarks. Either a variant of a real photo that ships with the dependencies
   (:mod:`.real`: :func:`real_faces`: scikit-image's astronaut and matplotlib's Grace Hopper,
   both public domain, found once by dlib) with its face shape warped, its skin tone changed
   and possibly mirrored (:func:`vary_identity`), or a face drawn from scratch
   (:mod:`.procedural`: :func:`procedural_face`) whose eyes, nose or mouth may be taken from
   the photos by Poisson blending. Either may get skin texture, age (static wrinkles),
   stubble or a beard, and a :class:`Look` (glasses, a fringe) drawn at every rendering
   (:mod:`.looks`).
2. **AU geometry** (:mod:`.geometry`: :data:`DISPLACEMENTS`, :func:`displace_landmarks`):
   each AU moves a few landmarks by a fixed vector per intensity unit, in inter-ocular
   distances (IOD) along the face's own axes; several AUs add up, one side may act less
   (asymmetric actions), and a blink (AU45) closes each eye by the fraction I/5 of its
   opening. The image follows through a smooth thin-plate-spline warp (:mod:`.warp`) through
   the landmarks and a fixed ring of anchors around the head.
3. **AU appearance** (:mod:`.appearance`: furrows, wrinkles, dimples, bulges, drawn as
   blurred dark and light strokes whose strength grows with the intensity, so that intensity
   is not readable from the landmarks alone and AUs that share centres (AU12/AU14) look
   different) and **interiors** (:mod:`.interiors`: the eyeballs redrawn between moving lids,
   so AU5 shows white above the iris and AU7/AU45 cover it; the mouth's cavity, teeth and
   tongue where the lips part).
4. **Nuisances** (:mod:`.nuisance`: :class:`Nuisance`, :func:`sample_nuisance`): background
   replacement, partial occluders, relighting of the face's relief (:mod:`.head`), lighting
   gradient, colour cast, contrast and gamma, then the head turned in depth (yaw and pitch to
   about ±35° through a mean face's relief, :mod:`.head`) and rolled, scaled and shifted,
   then the camera: small faces, blur, motion blur, low light, noise and JPEG compression.

:mod:`.rendering` puts these together (:func:`render`, :func:`render_sequence`).
Intensities follow expression prototypes mixed with independent activations, most faces
near neutral as in real recordings (:mod:`.sampling`: :func:`sample_intensities`,
:func:`sample_sides`), or smooth curves over time (:func:`intensity_curves`,
:func:`render_sequence`); :func:`make_dataset` (:mod:`.dataset`) writes a data set with a
manifest in the format of ``docs/data-format.md``.

Modules, each importing only from those listed before it:

- :mod:`.canvas`: the canvas's size, where a canonical face sits in it, drawing primitives;
- :mod:`.geometry`: AU landmark displacements, the face's axes, :func:`displace_landmarks`;
- :mod:`.warp`: the thin-plate-spline warp of an image through moved landmarks;
- :mod:`.sampling`: AU intensities (prototypes), asymmetries and smooth curves over time;
- :mod:`.appearance`: AU appearance strokes;
- :mod:`.looks`: skin texture, age, facial hair, glasses, fringes, occluders;
- :mod:`.identity`: :class:`Identity` and the head outline, shape and skin variation that all
  faces share;
- :mod:`.head`: the face's relief: turning the head in depth, relighting it;
- :mod:`.real`: identities from the bundled photos, their variants, photographic parts;
- :mod:`.procedural`: identities drawn from scratch;
- :mod:`.population`: the identities a seed defines (:func:`make_identity`,
  :func:`neutral_faces`);
- :mod:`.interiors`: eyeballs and the mouth's interior;
- :mod:`.nuisance`: scene, camera and head-pose nuisances;
- :mod:`.rendering`: :func:`render` and :func:`render_sequence`;
- :mod:`.dataset`: :func:`make_dataset` and its worker jobs.

Limitations, by construction: only two real photos exist to start from, so real-photo
identities share two skin textures and drawn faces, even with photographic parts, look
drawn; the astronaut's broad smile is undone geometrically and her mouth painted shut, but
traces remain, and count as intensity 0; a turn in depth compresses the far cheek instead of
hiding it behind the nose; AU geometry is a linear displacement per AU (real muscles
interact); occluders are simple shapes. The astronaut and the background photos come from
scikit-image's bundled data: without scikit-image, real identities are Grace Hopper's
variants only and backgrounds are synthetic.
"""

from __future__ import annotations

from .canvas import CANVAS
from .dataset import make_dataset
from .geometry import DISPLACEMENTS, REVISION, REVISIONS, displace_landmarks
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
    "REVISION",
    "REVISIONS",
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

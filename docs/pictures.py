"""Make the README's picture: a group photo through ``aumaps predict --maps``.

    python docs/pictures.py            # writes docs/images/group.jpg and docs/images/overlay.jpg

The "group photo" is put together from faces that ship with aumaps' dependencies, so anyone
can remake it offline: scikit-image's astronaut (smiling) and matplotlib's Grace Hopper,
beside two synthetic faces (:mod:`aumaps.data.synth`, identities derived from those photos)
posed with known AUs: a broad smile (AU6 + AU12) and a raised upper lip with a raised chin
(AU10 + AU17). The overlay is what ``aumaps predict docs/images/group.jpg --maps DIR`` writes
with the bundled model: every face's AU maps where they sit, and every face's bars.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np
from skimage import data

from aumaps import AUEstimator
from aumaps.data import synth
from aumaps.visualise import overlay

HERE = Path(__file__).resolve().parent / "images"
TILE = 360


def _tile_around_face(image: np.ndarray, landmarks: np.ndarray, face_share: float = 0.42) -> np.ndarray:
    """A TILE×TILE cut of ``image`` centred on the face, the face about ``face_share`` of it."""
    centre = (landmarks.min(0) + landmarks.max(0)) / 2
    side = float(np.max(landmarks.max(0) - landmarks.min(0))) / face_share
    scale = TILE / side
    matrix = np.array([[scale, 0, TILE / 2 - scale * centre[0]], [0, scale, TILE / 2 - scale * centre[1]]])
    return cv2.warpAffine(image, matrix, (TILE, TILE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def group_photo(est: AUEstimator) -> np.ndarray:
    grace = cv2.cvtColor(
        cv2.imread(str(Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg"))), cv2.COLOR_BGR2RGB
    )
    tiles = []
    for photo in (data.astronaut(), grace):
        (face,) = est.landmarker(photo)
        tiles.append(_tile_around_face(photo, face.landmarks))
    identities = [synth.make_identity(i, seed=2, procedural=0.0) for i in (1, 2)]
    for identity, aus, seed in zip(identities, ({6: 4.0, 12: 4.5}, {10: 3.5, 17: 4.0}), (1, 2)):
        image, landmarks = synth.render(identity, aus, np.random.default_rng(seed), nuisance=False)
        tiles.append(_tile_around_face(image, landmarks))
    return np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)


def main() -> None:
    est = AUEstimator()  # the bundled model, as `aumaps predict` without --weights
    group = group_photo(est)
    HERE.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(HERE / "group.jpg"), cv2.cvtColor(group, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    faces = est.predict(HERE / "group.jpg")
    print(
        f"{len(faces)} faces: "
        + "; ".join(", ".join(f"AU{a:02d} {v:.1f}" for a, v in f.intensities_dict().items()) for f in faces)
    )
    image = cv2.cvtColor(cv2.imread(str(HERE / "group.jpg")), cv2.COLOR_BGR2RGB)
    cv2.imwrite(
        str(HERE / "overlay.jpg"),
        cv2.cvtColor(overlay(image, faces), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, 90],
    )


if __name__ == "__main__":
    main()

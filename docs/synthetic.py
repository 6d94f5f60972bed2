"""Make the pictures of docs/synthetic.md: what aumaps' synthetic faces show, one change at a time.

    python docs/synthetic.py     # writes docs/images/synth-*.jpg and synth-statistics.png

Everything is rendered by :mod:`aumaps.data.synth` from the photos that ship with aumaps'
dependencies (scikit-image's astronaut, matplotlib's Grace Hopper; both public domain) and
faces drawn from scratch, with fixed seeds, so the pictures are the same on every machine.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from aumaps.aus import AU_SETS, get_au
from aumaps.data import synth
from aumaps.data.synth.nuisance import Nuisance

HERE = Path(__file__).resolve().parent / "images"
TILE = 150


def _tile(image: np.ndarray, landmarks: np.ndarray, label: str = "", share: float = 0.62) -> np.ndarray:
    """A TILE×TILE cut centred on the face, labelled underneath."""
    centre = (landmarks.min(0) + landmarks.max(0)) / 2
    side = float(np.max(landmarks.max(0) - landmarks.min(0))) / share
    scale = TILE / side
    matrix = np.array([[scale, 0, TILE / 2 - scale * centre[0]], [0, scale, TILE / 2 - scale * centre[1]]])
    out = cv2.warpAffine(image, matrix, (TILE, TILE), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
    if label:
        out = np.concatenate([out, np.full((18, TILE, 3), 255, np.uint8)])
        cv2.putText(out, label, (4, TILE + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def _grid(tiles: list[np.ndarray], columns: int) -> np.ndarray:
    blank = np.full_like(tiles[0], 255)
    tiles = tiles + [blank] * (-len(tiles) % columns)
    return np.concatenate([np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)])


def _save(name: str, image: np.ndarray) -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(HERE / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print("wrote", HERE / name)


def _plain(identity: synth.Identity) -> synth.Identity:
    return replace(identity, look=synth.Look())


def per_au() -> np.ndarray:
    """Each of OpenFace's 17 AUs at intensity 4.5 on a real and a drawn identity."""
    faces = [_plain(synth.real_faces()[0]), _plain(synth.make_identity(3, seed=0, procedural=1.0))]
    tiles = []
    for face in faces:
        image, lms = synth.render(face, {}, nuisance=False)
        tiles.append(_tile(image, lms, "neutral"))
        for au in AU_SETS["openface"]:
            image, lms = synth.render(face, {au: 4.5}, np.random.default_rng(au), nuisance=False)
            tiles.append(_tile(image, lms, f"AU{au:02d} {get_au(au).name}"[:24]))
    return _grid(tiles, 9)


PROTOTYPES = {
    "happiness 6+12+25": {6: 4.0, 12: 4.5, 25: 2.5},
    "sadness 1+4+15": {1: 4.0, 4: 3.5, 15: 4.0},
    "surprise 1+2+5+26": {1: 4.5, 2: 4.5, 5: 4.0, 26: 4.0, 25: 4.0},
    "fear 1+2+4+5+20+26": {1: 4.0, 2: 3.5, 4: 3.0, 5: 4.5, 20: 4.0, 26: 3.0, 25: 3.0},
    "anger 4+5+7+23": {4: 4.5, 5: 3.0, 7: 4.0, 23: 4.0},
    "disgust 9+10+17": {9: 4.5, 10: 4.0, 17: 3.0},
}


def lips() -> np.ndarray:
    """The mouth AUs the generator's revisions draw differently, at intensity 5, close to the
    mouth: revision 1 drew AU23 almost as AU24; revision 2 narrows the mouth for AU23 (with
    dimples at the corners, AU14's cue); revision 3 thins and pales its reds to a line instead,
    and lengthens and flattens the lips for AU20, its folds running out and down (AU12's
    corners go up)."""
    faces = [_plain(f) for f in synth.real_faces()] + [_plain(synth.make_identity(3, seed=0, procedural=1.0))]
    cases = [("neutral", {}, 3), ("AU23 rev 1", {23: 5.0}, 1), ("AU23 rev 2", {23: 5.0}, 2)]
    cases += [("AU23 rev 3", {23: 5.0}, 3), ("AU24", {24: 5.0}, 3), ("AU20 rev 2", {20: 5.0}, 2)]
    cases += [("AU20 rev 3", {20: 5.0}, 3), ("AU12", {12: 5.0}, 3), ("AU14", {14: 5.0}, 3)]
    tiles = []
    for face in faces:
        for label, aus, revision in cases:
            image, lms = synth.render(face, aus, np.random.default_rng(23), nuisance=False, revision=revision)
            mouth = face.landmarks[48:68]  # the neutral mouth, widened, frames every tile alike
            frame = np.concatenate([mouth, mouth.mean(0) + 1.6 * (mouth - mouth.mean(0))])
            tiles.append(_tile(image, frame, label, 0.9))
    return _grid(tiles, 9)


def prototypes() -> np.ndarray:
    """The basic emotions' prototypes on both photos and a drawn face."""
    faces = [_plain(f) for f in synth.real_faces()] + [_plain(synth.make_identity(5, seed=0, procedural=1.0))]
    tiles = []
    for face in faces:
        for k, (name, aus) in enumerate(PROTOTYPES.items()):
            image, lms = synth.render(face, aus, np.random.default_rng(k), nuisance=False)
            tiles.append(_tile(image, lms, name))
    return _grid(tiles, 6)


def identities() -> np.ndarray:
    """Sixteen identities of the training population (seed 0): drawn faces with skin texture,
    photographic parts, age, stubble or beards, glasses and fringes, and variants of the photos."""
    tiles = []
    for index in range(16):
        face = synth.make_identity(index, seed=0)
        image, lms = synth.render(face, {}, nuisance=False)
        tiles.append(_tile(image, lms, f"syn{index:04d} {face.source[:10]}"))
    return _grid(tiles, 8)


def camera() -> np.ndarray:
    """One face under the scene and camera nuisances, one at a time."""
    face = _plain(synth.make_identity(1, seed=0, procedural=0.0))
    rng = np.random.default_rng(0)
    base = dict(background=None)
    cases = {
        "yaw -35": Nuisance(yaw=-35.0),
        "yaw +20": Nuisance(yaw=20.0),
        "pitch -25 (up)": Nuisance(pitch=-25.0),
        "pitch +25 (down)": Nuisance(pitch=25.0),
        "overhead light": Nuisance(relight=(0.0, -0.85, 0.53, 0.9)),
        "side light": Nuisance(relight=(0.8, -0.3, 0.52, 0.9)),
        "low light": Nuisance(low_light=0.3),
        "face 45 px wide": Nuisance(downscale=0.45),
        "motion blur": Nuisance(motion=(8.0, 20.0)),
        "JPEG quality 25": Nuisance(jpeg=25),
        "a hand": Nuisance(occluder=True),
        "background": Nuisance(background=synth.nuisance._background(np.random.default_rng(3))),
    }
    tiles = []
    for name, nz in cases.items():
        nz = replace(nz, **{k: v for k, v in base.items() if k == "background" and nz.background is None})
        image, lms = synth.render(face, {12: 3.0, 6: 2.0}, np.random.default_rng(len(tiles)), nz)
        tiles.append(_tile(image, lms, name))
    del rng
    return _grid(tiles, 6)


def statistics() -> None:
    """Share of faces at each intensity per AU, and how often AUs co-occur (60,000 draws)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    aus = AU_SETS["openface"]
    draws = np.array([[s[a] for a in aus] for s in (synth.sample_intensities(rng) for _ in range(60000))])
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6))
    bins = [0, 0.5, 1.5, 2.5, 3.5, 4.5, 5.01]
    shares = np.array([np.histogram(draws[:, i], bins)[0] / len(draws) for i in range(len(aus))])
    bottom = np.zeros(len(aus))
    for k, label in enumerate(["< 0.5", "A (1)", "B (2)", "C (3)", "D (4)", "E (5)"]):
        ax1.bar(range(len(aus)), shares[:, k], bottom=bottom, label=label, color=plt.cm.viridis(k / 5))
        bottom += shares[:, k]
    ax1.set_xticks(range(len(aus)), [f"{a}" for a in aus])
    ax1.set_xlabel("AU")
    ax1.set_ylabel("share of faces")
    ax1.set_title("intensity per AU: most faces near 0")
    ax1.legend(fontsize=7, ncols=3)
    on = draws >= 1.0
    joint = (on[:, :, None] & on[:, None, :]).mean(0) / np.maximum(on.mean(0)[:, None], 1e-9)
    im = ax2.imshow(joint, cmap="magma", vmin=0, vmax=1)
    ax2.set_xticks(range(len(aus)), aus, fontsize=7)
    ax2.set_yticks(range(len(aus)), aus, fontsize=7)
    ax2.set_title("P(column AU active | row AU active)")
    fig.colorbar(im, ax=ax2, fraction=0.046)
    fig.tight_layout()
    fig.savefig(HERE / "synth-statistics.png", dpi=80)
    print("wrote", HERE / "synth-statistics.png")


def main() -> None:
    _save("synth-aus.jpg", per_au())
    _save("synth-lips.jpg", lips())
    _save("synth-prototypes.jpg", prototypes())
    _save("synth-identities.jpg", identities())
    _save("synth-camera.jpg", camera())
    statistics()


if __name__ == "__main__":
    main()

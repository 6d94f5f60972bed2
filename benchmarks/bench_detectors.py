"""Face detectors on hard faces: recall and time per image, per detector and per hard case.

    python benchmarks/bench_detectors.py [--only CASE ...] [--detectors NAME ...] [--slow]

The hard cases are made here from public-domain photos (scikit-image's astronaut, matplotlib's
Grace Hopper) and from aumaps' synthetic faces (identities derived from those photos,
:mod:`aumaps.data.synth`), with the drawing functions of ``tests/hard_faces.py``:

* ``plain``: the face 130 px wide in a 320×320 picture (the control);
* ``sunglasses``, ``mask``, ``hand``: drawn over the face;
* ``yaw±35``: the head turned in depth by 35° (the synthetic renderer's relief warp: a flat
  photo cannot be turned much further without tearing), ``roll±30``: the picture turned;
* ``dark``: 4 % of the light, with sensor noise;
* ``small40``, ``small60``, ``small80``: the face 40, 60 or 80 px wide in a 640×480 picture
  (grey around the photo);
* ``crop``: a third of the face outside the picture (its left edge);
* ``group5``: five faces about 100 px wide side by side, the second with sunglasses (the
  issue's group photo), and ``group5-small`` (faces about 60 px);
* ``no-face``: six of scikit-image's photos without a face (a cup, a cat, a rocket, a
  motorcycle, the Hubble deep field, coins), 640 px: false detections and their cost.

Each case is made from every base face (the astronaut, Grace Hopper, their mirror images and
three synthetic identities). A face counts as found when a box's centre lies inside the
face's landmark extent and its width is within a factor 2 (``hard_faces.found``); boxes that
match no face are false detections. A fresh detector per picture, so remembered verdicts
never help; the models are loaded before.

Detectors (``--detectors``): ``release`` (dlib's HOG as the BMVC 2018 release runs it),
``before`` (aumaps before this change: HOG, the upsampled small-face search, weak
detections confirmed by dlib's CNN), ``aumaps`` (the default now, ``"dlib"``: the same plus
HOG's candidates from -0.8 up confirmed by the CNN, at most 4 per picture), ``aumaps-0.5``
(candidates from -0.5 up), ``dlib-cnn`` (the registered thorough detector: plus the CNN over
the whole image), ``cnn`` (dlib's CNN alone, the image as it is) and, where the package is
installed, ``blazeface`` (MediaPipe's BlazeFace, full-range model; not a dependency of
aumaps).

Time is the CPU time of this process per picture (``time.process_time``: what one core
spends; wall time on a busy machine says more about the machine than the detector).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import hard_faces as hf
from aumaps.hardware import describe_machine
from aumaps.landmarks import DlibFaceDetector, FaceLandmarker

Case = tuple[np.ndarray, list[np.ndarray]]  # image, the landmarks of every face in it


def base_faces() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, landmarks) of the faces the cases are made from."""
    landmarker = FaceLandmarker()
    photos = [
        ("astronaut", data.astronaut()),
        ("hopper", cv2.cvtColor(cv2.imread(str(hf.GRACE_HOPPER)), cv2.COLOR_BGR2RGB)),
    ]
    faces = []
    for name, image in photos:
        (face,) = landmarker(image)
        faces.append((name, image, face.landmarks))
        mirrored = np.ascontiguousarray(image[:, ::-1])
        (face,) = landmarker(mirrored)
        faces.append((f"{name}-mirrored", mirrored, face.landmarks))
    try:
        from aumaps.data import synth

        for i in range(3):
            identity = synth.make_identity(i, seed=11, procedural=0.0)
            image, landmarks = synth.render(identity, {}, np.random.default_rng(i), nuisance=False)
            faces.append((f"synthetic{i}", image, landmarks))
    except Exception as err:  # the synthetic faces are a bonus; the photos are the cases
        print(f"(no synthetic faces: {type(err).__name__}: {err})")
    return faces


def _turned(image: np.ndarray, landmarks: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    from aumaps.data.synth.head import _turn_maps

    map_x, map_y, turned = _turn_maps(landmarks, image.shape[:2], degrees, 0.0)
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101), turned


def make_cases(faces: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, list[Case]]:
    cases: dict[str, list[Case]] = defaultdict(list)
    tiles = []
    for _, image, landmarks in faces:
        tile, lm = hf.tile(image, landmarks, 130, 320)
        tiles.append((tile, lm))
        cases["plain"].append((tile, [lm]))
        cases["sunglasses"].append((hf.sunglasses(tile, lm), [lm]))
        cases["mask"].append((hf.mask(tile, lm), [lm]))
        cases["hand"].append((hf.hand_over_mouth(tile, lm), [lm]))
        for degrees in (35, -35):
            try:
                turned, tl = _turned(tile, lm, degrees)
                cases[f"yaw{degrees:+d}"].append((turned, [tl]))
            except Exception:  # the synthetic renderer's relief is the lead's; no yaw without it
                pass
        for degrees in (30, -30):
            rolled, rl = hf.rotate(tile, lm, degrees)
            cases[f"roll{degrees:+d}"].append((rolled, [rl]))
        cases["dark"].append((hf.darken(tile), [lm]))
        for width in (40, 60, 80):
            small, sl = hf.tile(image, landmarks, width, (640, 480), at=(0.4, 0.45), fill=110)
            cases[f"small{width}"].append((small, [sl]))
        cut, cl = hf.tile(image, landmarks, 130, 320, at=(0.07, 0.5), fill=110)  # a third of the face outside
        cases["crop"].append((cut, [cl]))
    for name in ("coffee", "chelsea", "rocket", "stereo_motorcycle", "hubble_deep_field", "coins"):  # no face
        picture = getattr(data, name)()
        picture = picture[0] if isinstance(picture, tuple) else picture
        picture = np.ascontiguousarray(np.dstack([picture] * 3) if picture.ndim == 2 else picture[..., :3])
        scale = 640 / max(picture.shape[:2])
        cases["no-face"].append((cv2.resize(picture, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), []))
    for width, key in ((100, "group5"), (60, "group5-small")):
        for shift in range(len(faces)):  # each base face in turn wears the sunglasses
            chosen = [faces[(shift + k) % len(faces)] for k in range(5)]
            members = []
            for k, (_, image, landmarks) in enumerate(chosen):
                tile, lm = hf.tile(image, landmarks, width, (int(width * 2.4), int(width * 3.0)), at=(0.5, 0.4))
                members.append((hf.sunglasses(tile, lm) if k == 1 else tile, lm))
            picture, lms = hf.group(members)
            cases[key].append((picture, lms))
    return dict(cases)


def _boxes(detections) -> list[np.ndarray]:
    return [np.asarray(box, float) for box, _ in detections]


def detectors() -> dict[str, Callable[[], Callable[[np.ndarray], list[np.ndarray]]]]:
    """name -> a factory of a fresh detector function (image -> boxes)."""
    import dlib

    from aumaps.landmarks import _load_face_cnn, _packaged_model

    def dlib_detector(**options):
        def make():
            detector = DlibFaceDetector(**options)
            return lambda image: _boxes(detector.detect(image))

        return make

    def release():
        hog = dlib.get_frontal_face_detector()
        return lambda image: [np.array([r.left(), r.top(), r.right(), r.bottom()], float) for r in hog(image, 0)]

    def cnn():
        model = _load_face_cnn(str(_packaged_model("mmod_human_face_detector.dat")))
        return lambda image: [
            np.array([d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()], float) for d in model(image, 0)
        ]

    found = {
        "release": release,
        "before": dlib_detector(candidates=None),
        "aumaps": dlib_detector(),
        "aumaps-0.5": dlib_detector(candidates=-0.5),
        "dlib-cnn": dlib_detector(cnn_search=True),
        "cnn": cnn,
    }
    try:
        import mediapipe as mp

        def blazeface():
            model = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)

            def run(image):
                h, w = image.shape[:2]
                result = model.process(image)
                boxes = []
                for d in result.detections or []:
                    b = d.location_data.relative_bounding_box
                    boxes.append(np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h]))
                return boxes

            return run

        found["blazeface"] = blazeface
    except Exception:
        pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", help="hard cases to run (default: all)")
    parser.add_argument("--detectors", nargs="*", help="detectors to run (default: all)")
    parser.add_argument(
        "--slow",
        action="store_true",
        help="also run the whole-image CNN (cnn, dlib-cnn) on pictures over 0.2 megapixels",
    )
    args = parser.parse_args()

    print(describe_machine())
    cases = make_cases(base_faces())
    if args.only:
        cases = {k: v for k, v in cases.items() if k in args.only}
    available = detectors()
    names = args.detectors or list(available)
    print(
        f"{sum(len(v) for v in cases.values())} pictures, "
        f"{sum(len(lms) for v in cases.values() for _, lms in v)} faces; detectors: {', '.join(names)}\n"
    )
    header = f"{'case':<14}{'faces':>6}" + "".join(f"{n:>22}" for n in names)
    print(header)
    print(f"{'':<20}" + "".join(f"{'recall  CPU ms  false':>22}" for _ in names))  # no-face: pictures
    totals = {n: [0, 0, 0.0, 0, 0] for n in names}  # found, faces, seconds, pictures, false
    for key, pictures in cases.items():
        faces = sum(len(lms) for _, lms in pictures)
        line = f"{key:<14}{faces if faces else len(pictures):>6}"
        for name in names:
            slow = (
                name in ("cnn", "dlib-cnn")
                and not args.slow
                and max(p.shape[0] * p.shape[1] for p, _ in pictures) > 2e5
            )
            if slow:
                line += f"{'(--slow)':>22}"
                continue
            hits = false = 0
            seconds = 0.0
            for image, landmarks in pictures:
                detect = available[name]()
                image = np.ascontiguousarray(image)
                start = time.process_time()
                boxes = detect(image)
                seconds += time.process_time() - start
                hits += sum(hf.found(boxes, lm) for lm in landmarks)
                false += sum(not any(hf.found([b], lm) for lm in landmarks) for b in boxes)
            t = totals[name]
            t[0] += hits
            t[1] += faces
            t[2] += seconds
            t[3] += len(pictures)
            t[4] += false
            line += f"{hits / faces if faces else float('nan'):>10.2f}{1000 * seconds / len(pictures):>8.0f}{false:>4}"
        print(line)
    line = f"{'all':<14}{'':>6}"
    for name in names:
        found, faces, seconds, pictures, false = totals[name]
        line += f"{found / max(faces, 1):>10.2f}{1000 * seconds / max(pictures, 1):>8.0f}{false:>4}"
    print(line)


if __name__ == "__main__":
    main()

"""Shared fixtures: real faces that ship with the test dependencies."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
from skimage import data

from aumaps.landmarks import FaceLandmarker


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut: 512×512×3 uint8 RGB, one frontal face."""
    image = data.astronaut()
    image.flags.writeable = False
    return image


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """matplotlib's sample portrait of Grace Hopper (JPEG, 600×512, one face)."""
    return Path(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")


@pytest.fixture(scope="session")
def landmarker() -> FaceLandmarker:
    """The default dlib detector + 68-point predictor, built once for the session."""
    return FaceLandmarker()

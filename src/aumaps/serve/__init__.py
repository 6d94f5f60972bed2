"""``aumaps serve``: AU maps in the browser — photos, videos and the live webcam.

A local web application (FastAPI on uvicorn) serving one page from the package (plain
HTML, CSS and JavaScript: no build step, no CDN, works offline):

* :mod:`~aumaps.serve.app`: :func:`create_app`, the application;
* :mod:`~aumaps.serve.routers`: its API, one router per concern (security, models, photos,
  jobs, live); :mod:`~aumaps.serve.state`: what a running server holds;
* :mod:`~aumaps.serve.server`: :func:`serve`, which binds, prints how to open the page
  (with its token) and runs it;
* :mod:`~aumaps.serve.security`: the access token (always), the cookie, the host and
  origin checks, the redirect file, uploads;
* :mod:`~aumaps.serve.errors`: every error as JSON with a status that says what to do;
* :mod:`~aumaps.serve.models`: the model picker and the estimators behind it;
* :mod:`~aumaps.serve.photos`, :mod:`~aumaps.serve.jobs`, :mod:`~aumaps.serve.live`: the three
  panels' server sides; :mod:`~aumaps.serve.workers`: the background threads photos and
  videos run in, below the live views' priority; :mod:`~aumaps.serve.payload`: faces as the
  page receives them.

Everything is computed by the same objects as the command line and the Python API
(:class:`aumaps.predict.AUEstimator`, :func:`aumaps.video.process_video`, the CSV schema of
:mod:`aumaps.results`).
"""

from .app import create_app
from .server import serve

__all__ = ["create_app", "serve"]

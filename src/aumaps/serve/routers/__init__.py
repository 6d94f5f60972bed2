"""The API of ``aumaps serve``, one router per concern (FastAPI ``APIRouter``):

* :mod:`~aumaps.serve.routers.security`: the page, and the token exchanged for a cookie
  (``GET /?token=…``, ``POST /login``);
* :mod:`~aumaps.serve.routers.models`: ``/api/config`` (the models on offer, the limits);
* :mod:`~aumaps.serve.routers.photos`: ``/api/photos…`` (analyse, downloads, delete);
* :mod:`~aumaps.serve.routers.jobs`: ``/api/jobs…`` (video jobs: submit, follow, cancel,
  outputs, delete);
* :mod:`~aumaps.serve.routers.live`: ``/ws/live`` and the recordings it makes
  (``/api/recordings/ID``).

Every route finds the server's state with :func:`aumaps.serve.state.server_state`; its
refusals are :class:`~aumaps.serve.errors.ApiError`; every other error is turned into JSON
by :func:`aumaps.serve.errors.install_error_handlers`.
"""

from . import jobs, live, models, photos, security

ROUTERS = (security.router, models.router, photos.router, jobs.router, live.router)

__all__ = ["ROUTERS"]

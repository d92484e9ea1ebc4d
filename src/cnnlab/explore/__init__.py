"""``cnnlab explore``: an interactive page that shows what a CNN does to an image, served locally.

:mod:`cnnlab.explore.engine` computes every number (no web framework needed);
:mod:`cnnlab.explore.server` serves them as a JSON API and the page (needs the
``explore`` extra: Starlette, uvicorn, python-multipart).  Importing this
package imports neither.
"""
__all__ = ["create_app"]


def create_app(saved_model, run_dir=None, **kwargs):
    """See :func:`cnnlab.explore.server.create_app`."""
    from .server import create_app as _create
    return _create(saved_model, run_dir, **kwargs)

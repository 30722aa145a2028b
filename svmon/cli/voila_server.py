"""The Voila server that `svmon up` and `svmon dashboards` start (`python -m
svmon.cli.voila_server`, the same arguments as `python -m voila`).

Voila as it comes, with two routes made safe for a server anyone on the network can
reach (no Voila setting covers either):

- ``/voila/templates/<path>`` answers 404, not 500, for a path that is not
  ``<template>/static/<file>``: Voila's handler fails on the unpacking of such a path
  and tornado reports the ``ValueError`` as an internal error.
- ``/voila/api/contents`` is not served. Voila adds it for its tree page, and it lists
  the notebooks (names, sizes, dates) to anyone; the dashboards are linked by name. The
  command also sets ``ContentsManager.hide_globs`` so that nothing Voila lists through
  its contents manager shows a file either.
"""

from __future__ import annotations

import os
from typing import Any

from tornado import web
from voila.app import Voila  # type: ignore[import-untyped,unused-ignore]
from voila.static_file_handler import (  # type: ignore[import-untyped,unused-ignore]
    TemplateStaticFileHandler,
)
from voila.tornado.contentshandler import (  # type: ignore[import-untyped,unused-ignore]
    VoilaContentsHandler,
)


class TemplateFiles(TemplateStaticFileHandler):  # type: ignore[misc,unused-ignore]
    """Voila's template static files; a malformed path is not found rather than an
    error (Voila unpacks it as ``template/static/file`` unchecked)."""

    def parse_url_path(self, path: str) -> str:
        # Voila splits the raw path here and the normalised one when it opens the file;
        # handing it the normalised one makes both agree (``..`` or ``//`` cannot move
        # the ``static`` part)
        parts = os.path.normpath(path).split(os.path.sep, 2) if path else []
        if len(parts) != 3 or parts[0] in ("", ".", "..") or parts[1] != "static":
            raise web.HTTPError(404)
        try:
            return str(super().parse_url_path("/".join(parts)))
        except ValueError:  # no template of that name
            raise web.HTTPError(404) from None


class DashboardServer(Voila):  # type: ignore[misc,unused-ignore]
    """Voila without the contents API, and with template paths checked."""

    def init_handlers(self) -> list[Any]:
        out = []
        for route in super().init_handlers():
            handler = route[1]
            if handler is VoilaContentsHandler:
                continue
            if handler is TemplateStaticFileHandler:
                route = (route[0], TemplateFiles, *route[2:])
            out.append(route)
        return out


if __name__ == "__main__":  # pragma: no cover - run by voila_command
    DashboardServer.launch_instance()

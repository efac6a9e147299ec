"""The web console: server-rendered pages on the daemon's own port.

``setup(app, api)`` adds the pages (``views.py``), the form posts (``actions.py``),
the event stream ``GET /api/v1/events`` (``events.py``), the login (``access.py``)
and the vendored static files to the aiohttp application that ``server.http`` built.
Jinja2 with autoescape on renders every page; the pages read without JavaScript, and
a few lines of vanilla JS (``static/console.js``) follow the event stream and swap in
server-rendered fragments.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from remediator.console.access import ACCESS, Access
from remediator.console.checks import PlaybookCheck
from remediator.console.events import EventHub
from remediator.console.filters import FILTERS
from remediator.console.links import LinkConfig, Links
from remediator.server.http import Api

HERE = Path(__file__).parent
HUB: web.AppKey[EventHub] = web.AppKey("console_events", EventHub)


def setup(app: web.Application, api: Api, links: LinkConfig | None = None,
          check: PlaybookCheck | None = None) -> Access:
    """``links``: base URLs of Jira, Slack and Alertmanager for the incident pages;
    ``check``: the playbook paths (and escalation policies) ``/playbooks`` checks."""
    from remediator.console import actions, events, views
    access = Access(api)
    # sets the templates' context itself (see ``Access.context``): no context processors,
    # whose middleware aiohttp_jinja2 would run on every request, webhooks included
    app.middlewares.append(access.middleware)
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined)
    env.filters.update(FILTERS)
    app[ACCESS] = access
    hub = EventHub(api.engine.store)
    app[HUB] = hub
    api.session_of = access.session_principal
    views.routes(app, api, access, Links(links or LinkConfig(), api.engine.store),
                 check or PlaybookCheck())
    actions.routes(app, api, access)
    events.routes(app, api, hub)
    app.router.add_static("/static/", HERE / "static", name="static")
    app.on_cleanup.append(lambda _app: hub.close())
    return access

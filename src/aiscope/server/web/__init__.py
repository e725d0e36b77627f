"""The web dashboard: a static page (own JS and CSS, no CDN) over the query API."""

# the page and its routes live in aiscope.server.web.routes (mounted by the server app)
__all__: list[str] = []

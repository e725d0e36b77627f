"""The web dashboard: a static page (own JS and CSS, no CDN) over the query API."""

# the page is served by aiscope.server.routes.dashboard; this package holds its files
__all__: list[str] = []

"""The web dashboard: a static page (own JS and CSS, no CDN) over the query API."""

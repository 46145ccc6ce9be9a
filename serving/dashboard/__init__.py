"""The live dashboard at / (and /dashboard): a static page that draws the service's own answers.

The page, its script and Plotly's bundle (from the installed `plotly` package: no CDN) are open like
the probes; the page's data calls carry the API token like any client's (serving.dashboard.routes).
"""

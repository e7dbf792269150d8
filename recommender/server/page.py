"""The page served at ``/``."""

__all__ = ["INDEX_HTML"]

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>recommender</title>
<style>body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}
code{background:#f3f3f3;padding:0 .2rem}</style></head>
<body><h1>recommender</h1>
<p>Streaming recommendations. Endpoints:</p>
<ul>
<li><a href="/recommend?user=u1&amp;n=10"><code>GET /recommend?user=ID&amp;n=10</code></a>
 &mdash; top-n items for a user (<code>filter_seen</code>, <code>exclude=a,b</code>)</li>
<li><code>GET /?userId=ID&amp;recommendationsNumber=N</code> &mdash; the original API</li>
<li><a href="/model"><code>GET /model</code></a> &mdash; the serving snapshot's manifest</li>
<li><a href="/ready"><code>GET /ready</code></a>, <a href="/health"><code>GET /health</code></a>,
 <a href="/metrics"><code>GET /metrics</code></a></li>
</ul></body></html>
"""

"""The live page served at ``/``: one self-contained HTML file, no build step."""

from importlib.resources import files

__all__ = ["INDEX_HTML"]

INDEX_HTML = files(__package__).joinpath("static/index.html").read_text(encoding="utf-8")

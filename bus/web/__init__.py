"""HTTP adapters on one web stack (FastAPI + Jinja2, every asset shipped in the package).

`bus.web.console`: the liaison officer's console over a member's feed index.
"""

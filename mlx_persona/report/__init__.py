"""The run report: blocks (build.py), plots, Markdown and HTML rendering."""

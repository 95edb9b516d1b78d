"""``mlx-persona serve``: the twin behind an OpenAI-compatible API, with a side-by-side dashboard.

The story of a request: :mod:`.app` (Starlette, run by uvicorn) checks the key and the body size,
:mod:`.openai_api` checks the fields, and :mod:`.engine` runs it on its model's continuous batch
(mlx_lm's ``BatchGenerator``) in the one thread that touches MLX, loading the model through
:mod:`.pool` (lazily, least recently used out when the memory budget is full). Tokens flow back
as they come, whole or as server-sent events. The dashboard (``static/``: plain HTML, JS and CSS,
no build step) speaks the same API, to several models at once. :mod:`.cli` is the command.
"""

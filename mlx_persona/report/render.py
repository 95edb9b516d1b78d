"""A report as a list of blocks, rendered twice: Markdown (PNGs beside it) and one HTML file.

Blocks are tuples: ``("h1"|"h2"|"p", text)``, ``("table", headers, rows)``, ``("img", name,
png_bytes, caption)``, ``("pre", text)``, ``("list", items)``. The HTML embeds every image as a
base64 ``data:`` URI and carries its own CSS, so it opens anywhere, offline, as one file.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from mlx_persona.core.runs import atomic_write_bytes

CSS = """
body { font-family: -apple-system, system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; white-space: pre-wrap; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; }
figure { margin: 1em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""


def _md_cell(v) -> str:
    return str("" if v is None else v).replace("|", "\\|").replace("\n", "<br>")


def to_markdown(blocks: list, assets: Path, assets_rel: str) -> str:
    """Markdown text; images are written as PNG files into ``assets``."""
    out = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + b[1])
        elif kind == "p":
            out.append(b[1])
        elif kind == "list":
            out.append("\n".join(f"- {item}" for item in b[1]))
        elif kind == "pre":
            out.append("```\n" + b[1].rstrip("\n") + "\n```")
        elif kind == "table":
            headers, rows = b[1], b[2]
            lines = ["| " + " | ".join(_md_cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            name, png, caption = b[1], b[2], b[3]
            atomic_write_bytes(assets / f"{name}.png", png)
            out.append(f"![{caption}]({assets_rel}/{name}.png)")
    return "\n\n".join(out) + "\n"


def _is_num(v) -> bool:
    s = str(v).strip().lstrip("+-−").rstrip("%×x")
    return bool(s) and s.replace(".", "", 1).replace(",", "").isdigit()


def to_html(blocks: list, title: str) -> str:
    """One self-contained HTML page."""
    e = html.escape
    out = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}</title>",
        f"<style>{CSS}</style></head><body>",
    ]
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append(f"<{kind}>{e(b[1])}</{kind}>")
        elif kind == "p":
            out.append(f"<p>{e(b[1])}</p>")
        elif kind == "list":
            out.append("<ul>" + "".join(f"<li>{e(str(i))}</li>" for i in b[1]) + "</ul>")
        elif kind == "pre":
            out.append(f"<pre>{e(b[1])}</pre>")
        elif kind == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in b[1])
            body = "".join(
                "<tr>"
                + "".join(
                    f"<td class='num'>{e(str(c))}</td>" if _is_num(c) else f"<td>{e('' if c is None else str(c))}</td>"
                    for c in r
                )
                + "</tr>"
                for r in b[2]
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode(b[2]).decode("ascii")
            out.append(
                f"<figure><img alt='{e(b[3])}' data-plot='{e(b[1])}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{e(b[3])}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"

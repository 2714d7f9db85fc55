"""The report as one self-contained HTML file: the Markdown report's headings, paragraphs and tables, with its
figures embedded (base64 PNGs), so it opens anywhere, including as an artifact in the MLflow UI."""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)")
_CODE = re.compile(r"`([^`]+)`")
STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
         "td:first-child,th:first-child{text-align:left}img{max-width:100%;margin:1em 0}")


def to_html(markdown: str, folder: Path) -> str:
    """Render the report's Markdown (as ``report.markdown`` writes it) with the PNGs it links from ``folder``."""
    body, table = [], []
    for line in markdown.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            body.append(_table(table))
            table = []
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif match := _IMAGE.fullmatch(line.strip()):
            data = base64.b64encode((folder / match["src"]).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(match["alt"])}" src="data:image/png;base64,{data}">')
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
    if table:
        body.append(_table(table))
    title = html.escape(markdown.splitlines()[0].lstrip("# ").replace("`", "")) if markdown else "report"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{STYLE}</style>"
            f"</head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
    return _CODE.sub(r"<code>\1</code>", html.escape(text))


def _table(lines: list[str]) -> str:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines]
    header, body = rows[0], [row for row in rows[1:] if not all(set(cell) <= {"-"} for cell in row)]
    head = "".join(f"<th>{_inline(cell)}</th>" for cell in header)
    cells = "".join("<tr>" + "".join(f"<td>{_inline(cell)}</td>" for cell in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{cells}</tbody></table>"

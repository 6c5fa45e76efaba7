"""A Markdown table page as a standalone HTML page, for Snakemake's HTML report.

The report shows images and HTML pages but not Markdown or CSV, and our Markdown pages are
the person-readable form of every table (with the verdict lines and notes under it), so each is
rendered as it is, by Python-Markdown with its tables extension, plus a few lines of CSS.
"""

from __future__ import annotations

import html

import markdown

STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
blockquote { border-left: 4px solid #d33; margin: 1em 0; padding: 0.2em 1em; background: #fff4f4; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def to_html(text: str, title: str) -> str:
    body = markdown.markdown(text, extensions=["tables"], output_format="html")
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )

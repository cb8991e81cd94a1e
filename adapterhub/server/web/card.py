"""An entry's model card (``README.md``) on its page: read only when its bytes are the
published ones, rendered with raw HTML escaped (the card is user content).

Markdown goes through markdown-it in CommonMark mode with HTML off: tags in the text come out as
text, ``javascript:`` and other unsafe links are not linked, and images are not rendered (a page
must load nothing from the network); links that remain get ``rel="nofollow noopener
noreferrer"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from markdown_it import MarkdownIt
from markupsafe import Markup

from adapterhub.registry.manifest import CARD
from adapterhub.registry.resolver import Resolution
from adapterhub.registry.verify import sha256_file

MAX_CARD_BYTES = 256 * 1024
"""Cards above this are not rendered (a generated card is about 2 KB)."""


def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable("table").disable("image")

    def link_open(tokens, index, options, env):
        tokens[index].attrSet("rel", "nofollow noopener noreferrer")
        return md.renderer.renderToken(tokens, index, options, env)

    md.add_render_rule("link_open", link_open)
    return md


_MARKDOWN = _markdown()


def render_markdown(text: str) -> Markup:
    """Safe HTML of Markdown text: every tag of the input is escaped, not interpreted."""
    return Markup(_MARKDOWN.render(text))


@dataclass(frozen=True)
class Card:
    front_matter: str
    """The YAML front matter, as text."""
    body: Markup
    """The Markdown after it, rendered safely."""


def split_front_matter(text: str) -> tuple[str, str]:
    """(YAML front matter, the rest) of a card; no front matter gives ("", text)."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            return text[4:end].strip("\n"), text[end + 4 :].lstrip("\n")
    return "", text


def read_card(resolution: Resolution) -> tuple[Card | None, str]:
    """The card of a resolved entry and a note for the page: (None, why) when it is not in a
    local folder, missing, too large, or not the bytes the manifest records."""
    info = resolution.manifest.files.get(CARD)
    if info is None:
        return None, "this entry has no model card"
    folder = resolution.path
    if folder is None:
        return None, (
            f"the card is in {resolution.store_name}; pull the entry "
            f"(adapterhub registry pull {resolution.id}) to read it here"
        )
    if info.bytes > MAX_CARD_BYTES:
        return None, f"the card is {info.bytes} bytes, more than this page shows"
    path = folder / CARD
    if not path.is_file():
        return None, f"its {CARD} is missing; run `adapterhub registry verify {resolution.id}`"
    digest, _ = sha256_file(path)
    if digest != info.sha256:
        return None, (
            f"its {CARD} is not the published card (its sha256 differs from the manifest's), so "
            f"it is not shown; run `adapterhub registry verify {resolution.id}`"
        )
    front, body = split_front_matter(path.read_text(encoding="utf-8", errors="replace"))
    return Card(front, render_markdown(body)), "sha256 matches the manifest"

"""Side-by-side pictures (README, demo, benchmarks)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from restoreagent.tools.util.imageio import to_uint8


def contact_sheet(panels: list[tuple[str, np.ndarray]], height: int = 320, gap: int = 6) -> Image.Image:
    """A row of labelled panels, each resized to ``height`` pixels tall (a label shrinks to fit its panel)."""
    tiles = []
    for label, rgb in panels:
        im = Image.fromarray(to_uint8(rgb))
        w = max(1, round(im.width * height / im.height))
        tiles.append((label, im.resize((w, height), Image.Resampling.LANCZOS)))
    size = max(12, height // 18)
    font = ImageFont.load_default(size=size)
    while size > 12 and any(font.getlength(label) > 0.95 * tile.width for label, tile in tiles):
        size -= 2
        font = ImageFont.load_default(size=size)
    label_h = int(font.size * 1.6)
    width = sum(t.width for _, t in tiles) + gap * (len(tiles) + 1)
    sheet = Image.new("RGB", (width, height + label_h + 2 * gap), "white")
    draw = ImageDraw.Draw(sheet)
    x = gap
    for label, tile in tiles:
        sheet.paste(tile, (x, gap))
        draw.text((x + tile.width // 2, gap + height + label_h // 2), label, fill="black", font=font, anchor="mm")
        x += tile.width + gap
    return sheet


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    """Sheets (for example rows from :func:`contact_sheet`) one under the other, left-aligned."""
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return sheet

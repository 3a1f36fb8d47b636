"""A 2-D view as a self-contained HTML page (``view.html``): hover a point to see the garment, its class and its
index in the test split; pan, zoom, and a legend that hides or shows each class. Bokeh, its JavaScript inline: the
page makes no network request, so it opens offline and in the MLflow UI's artifact viewer."""

from __future__ import annotations

import base64
import io

import numpy as np

from ..plots import PALETTE

VIEW_PAGE = "view.html"  # beside embedding.png on every visualize run
THUMB_SCALE = 4  # the tooltip shows each 28 x 28 image at 112 x 112


SPRITE_COLUMNS = 40
SPRITE_QUALITY = 30  # WebP: a 1,000-point page stays well under 1.5 MB beside Bokeh's 1.27 MB of JavaScript


def sprite(images: np.ndarray, columns: int = SPRITE_COLUMNS) -> str:
    """Every image in one grayscale WebP sheet (row-major, ``columns`` wide) as a ``data:`` URI: encoded once
    per page, about 160 bytes an image where one PNG each takes 500."""
    from PIL import Image

    n, h, w = images.shape
    rows = -(-n // columns)
    sheet = np.zeros((rows * h, columns * w), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * h:(r + 1) * h, c * w:(c + 1) * w] = img
    buf = io.BytesIO()
    Image.fromarray(sheet, mode="L").save(buf, format="WEBP", quality=SPRITE_QUALITY, method=6)
    return "data:image/webp;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


TOOLTIP = """
<div style="width:{tw}px;height:{th}px;overflow:hidden;border:1px solid #999">
  <img class="fmnist-thumb" src="{src}" style="width:{sw}px;max-width:none;image-rendering:pixelated;
       margin-left:-@sx{{0}}px;margin-top:-@sy{{0}}px">
</div>
<div style="font-size:13px"><b>$name</b></div>
<div style="font-size:12px">test image #@test_index</div>
"""


def view_page(coords: np.ndarray, labels: np.ndarray, classes: list[str], test_index: np.ndarray,
              images: np.ndarray, title: str) -> str:
    """The page's HTML: one scatter renderer per class (so the legend hides it), a hover tooltip with the image
    enlarged ``THUMB_SCALE`` times, its class and its test index; resources inline."""
    from bokeh.embed import file_html
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    n, h, w = images.shape
    cols = min(SPRITE_COLUMNS, n)
    at_col, at_row = np.arange(n) % cols, np.arange(n) // cols
    fig = figure(title=title, width=900, height=700, tools="pan,wheel_zoom,box_zoom,reset",
                 active_scroll="wheel_zoom", match_aspect=True)
    renderers = []
    for k, name in enumerate(classes):
        at = np.flatnonzero(labels == k)
        if not len(at):
            continue
        src = ColumnDataSource({"x": coords[at, 0].astype(np.float32), "y": coords[at, 1].astype(np.float32),
                                "sx": (at_col[at] * w * THUMB_SCALE).astype(np.int32),
                                "sy": (at_row[at] * h * THUMB_SCALE).astype(np.int32),
                                "test_index": np.asarray(test_index)[at].astype(np.int32)})
        renderers.append(fig.scatter("x", "y", source=src, size=5, color=PALETTE[k % len(PALETTE)], alpha=0.75,
                                     legend_label=f"{k} {name}", name=name))
    tooltip = TOOLTIP.format(tw=THUMB_SCALE * w, th=THUMB_SCALE * h, sw=THUMB_SCALE * w * cols, src=sprite(images))
    fig.add_tools(HoverTool(renderers=renderers, tooltips=tooltip))
    fig.legend.click_policy = "hide"
    fig.legend.location = "top_left"
    fig.add_layout(fig.legend[0], "right")
    fig.xaxis.visible = fig.yaxis.visible = False
    return file_html(fig, INLINE, title=title)

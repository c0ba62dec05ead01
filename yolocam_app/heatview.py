"""The Explore page's interactive view: one scale's heatmap over the photo, every
detection's box (the chosen one highlighted), a click on a box explains it; hover
shows the value, the grid cell and the pixel; wheel to zoom, drag to pan,
double-click to reset.

A small ``st.components.v2`` component (an image, an SVG and ~100 lines of script)
instead of a plotly chart: measured in the real-browser test, the plotly chart
(plotly.js is ~4.6 MB of script to load and compile) delayed a new session's first
heatmaps by 1.5-3 s on a loaded 2-core machine.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

CSS = """
.yc-wrap { position: relative; overflow: hidden; border-radius: 6px; background: #111;
  touch-action: none; user-select: none; margin: 0 auto; }
.yc-zoom { position: absolute; inset: 0; transform-origin: 0 0; }
.yc-zoom img { position: absolute; inset: 0; width: 100%; height: 100%; display: block; }
.yc-zoom svg { position: absolute; inset: 0; width: 100%; height: 100%; overflow: visible; }
.yc-box { fill: transparent; cursor: pointer; pointer-events: all; }
.yc-box:hover { fill: rgba(255, 255, 255, 0.12); }
.yc-dot { cursor: pointer; }
.yc-tip { position: absolute; pointer-events: none; background: rgba(20, 22, 30, 0.88);
  color: #fff; font: 12px/1.35 system-ui, sans-serif; padding: 4px 7px; border-radius: 4px;
  white-space: nowrap; display: none; z-index: 2; }
.yc-help { font: 12px system-ui, sans-serif; color: #666; margin-top: 4px; }
"""

JS = """
export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (!data) return;
  // Our own root: the component's root also holds its <style>, which must stay.
  let root = parentElement.querySelector(".yc-root");
  if (!root) {
    root = document.createElement("div");
    root.className = "yc-root";
    parentElement.appendChild(root);
  }
  root.innerHTML = "";
  const d = data;
  const wrap = document.createElement("div");
  wrap.className = "yc-wrap";
  wrap.dataset.testid = "yolocamHeatView";
  const aspect = d.width / d.height;
  wrap.style.aspectRatio = `${d.width} / ${d.height}`;
  wrap.style.maxWidth = `min(100%, ${Math.round(d.max_height * aspect)}px)`;
  const zoom = document.createElement("div");
  zoom.className = "yc-zoom";
  const img = document.createElement("img");
  img.src = d.image;
  img.alt = d.alt;
  zoom.appendChild(img);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${d.width} ${d.height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const stroke = d.width / 400;
  const order = d.boxes.map((b, k) => k).sort((a, b) => {
    const A = d.boxes[a], B = d.boxes[b];
    if (A.chosen !== B.chosen) return A.chosen ? 1 : -1;  // the chosen box on top
    return (B.x2 - B.x1) * (B.y2 - B.y1) - (A.x2 - A.x1) * (A.y2 - A.y1);  // small on top
  });
  for (const k of order) {
    const b = d.boxes[k];
    const rect = (cls, colour, width, opacity) => {
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", b.x1); r.setAttribute("y", b.y1);
      r.setAttribute("width", Math.max(1, b.x2 - b.x1));
      r.setAttribute("height", Math.max(1, b.y2 - b.y1));
      r.setAttribute("class", cls);
      r.setAttribute("stroke", colour);
      r.setAttribute("stroke-width", width);
      r.setAttribute("stroke-opacity", opacity);
      r.dataset.index = k;
      svg.appendChild(r);
      return r;
    };
    if (b.chosen) rect("yc-box", "#ffffff", stroke * 4, 1);
    rect("yc-box", b.colour, b.chosen ? stroke * 2 : stroke, b.dim ? 0.55 : 1);
    const dot = document.createElementNS(ns, "circle");
    dot.setAttribute("cx", (b.x1 + b.x2) / 2); dot.setAttribute("cy", (b.y1 + b.y2) / 2);
    dot.setAttribute("r", stroke * (b.chosen ? 5 : 3.5));
    dot.setAttribute("fill", b.colour); dot.setAttribute("stroke", "#fff");
    dot.setAttribute("stroke-width", stroke);
    dot.setAttribute("class", "yc-dot");
    dot.dataset.index = k;
    svg.appendChild(dot);
  }
  zoom.appendChild(svg);
  wrap.appendChild(zoom);
  const tip = document.createElement("div");
  tip.className = "yc-tip";
  wrap.appendChild(tip);
  root.appendChild(wrap);
  const help = document.createElement("div");
  help.className = "yc-help";
  help.textContent = d.help;
  root.appendChild(help);

  // Zoom (wheel), pan (drag), reset (double-click); a click without a drag on a box
  // chooses it.
  let scale = 1, tx = 0, ty = 0, drag = null, moved = false;
  const apply = () => { zoom.style.transform = `translate(${tx}px, ${ty}px) scale(${scale})`; };
  const clamp = () => {
    const w = wrap.clientWidth, h = wrap.clientHeight;
    tx = Math.min(0, Math.max(w - w * scale, tx));
    ty = Math.min(0, Math.max(h - h * scale, ty));
  };
  wrap.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = wrap.getBoundingClientRect();
    const mx = e.clientX - r.left, my = e.clientY - r.top;
    const next = Math.min(8, Math.max(1, scale * (e.deltaY < 0 ? 1.25 : 0.8)));
    tx = mx - (mx - tx) * next / scale; ty = my - (my - ty) * next / scale;
    scale = next; clamp(); apply();
  }, { passive: false });
  wrap.addEventListener("pointerdown", (e) => {
    drag = [e.clientX, e.clientY, tx, ty];
    moved = false;
  });
  window.addEventListener("pointerup", () => { drag = null; });
  wrap.addEventListener("dblclick", () => { scale = 1; tx = 0; ty = 0; apply(); });
  const pixel = (e) => {
    const r = wrap.getBoundingClientRect();
    const x = ((e.clientX - r.left - tx) / scale) * d.width / r.width;
    const y = ((e.clientY - r.top - ty) / scale) * d.height / r.height;
    return [x, y];
  };
  const nearest = (values, v) => {
    let best = 0;
    for (let i = 1; i < values.length; i++) {
      if (Math.abs(values[i] - v) < Math.abs(values[best] - v)) best = i;
    }
    return best;
  };
  wrap.addEventListener("pointermove", (e) => {
    if (drag) {
      if (Math.abs(e.clientX - drag[0]) + Math.abs(e.clientY - drag[1]) > 4) moved = true;
      if (scale > 1) {
        tx = drag[2] + e.clientX - drag[0];
        ty = drag[3] + e.clientY - drag[1];
        clamp();
        apply();
      }
    }
    const [x, y] = pixel(e);
    if (x < 0 || y < 0 || x > d.width || y > d.height) { tip.style.display = "none"; return; }
    const i = nearest(d.heat.ys, y), j = nearest(d.heat.xs, x);
    let text = `value ${d.heat.values[i][j].toFixed(3)} · grid cell `;
    text += `(row ${d.heat.rows[i]}, col ${d.heat.cols[j]})`;
    text += ` · pixel (${Math.round(x / d.view_scale)}, ${Math.round(y / d.view_scale)})`;
    const over = e.target && e.target.dataset ? e.target.dataset.index : undefined;
    if (over !== undefined) text = `${d.boxes[over].label} — click to explain<br>` + text;
    tip.innerHTML = text;
    const r = wrap.getBoundingClientRect();
    tip.style.display = "block";
    tip.style.left = `${Math.min(e.clientX - r.left + 12, r.width - tip.offsetWidth - 4)}px`;
    tip.style.top = `${Math.min(e.clientY - r.top + 12, r.height - tip.offsetHeight - 4)}px`;
  });
  wrap.addEventListener("pointerleave", () => { tip.style.display = "none"; });
  svg.addEventListener("click", (e) => {
    const k = e.target && e.target.dataset ? e.target.dataset.index : undefined;
    if (k !== undefined && !moved) setTriggerValue("clicked", Number(k));
  });
}
"""

_COMPONENT = None


def _component():
    global _COMPONENT
    if _COMPONENT is None:
        _COMPONENT = st.components.v2.component("yolocam_heatview", css=CSS, js=JS)
    return _COMPONENT


def heat_grid(
    heatmap: np.ndarray, grid: tuple[int, int], to_network, stride: int, max_side: int = 96
) -> dict:
    """The heatmap subsampled for hovering: values and, per sampled row and column,
    the pixel and the grid cell it falls in.

    Args:
        heatmap: (H, W) in [0, 1].
        grid: (rows, cols) of the scale's grid.
        to_network: maps (N, 4) boxes in heatmap pixels to network pixels.
        stride: network pixels per cell.
        max_side: at most this many samples a side.
    """
    height, width = heatmap.shape
    step = max(1, int(np.ceil(max(height, width) / max_side)))
    ys = np.arange(step // 2, height, step)
    xs = np.arange(step // 2, width, step)
    corners = np.stack([xs, np.zeros_like(xs), xs, np.zeros_like(xs)], axis=1).astype(float)
    cols = np.clip((to_network(corners)[:, 0] // stride).astype(int), 0, grid[1] - 1)
    corners = np.stack([np.zeros_like(ys), ys, np.zeros_like(ys), ys], axis=1).astype(float)
    rows = np.clip((to_network(corners)[:, 1] // stride).astype(int), 0, grid[0] - 1)
    values = np.round(heatmap[np.ix_(ys, xs)].astype(float), 3)
    return {
        "values": values.tolist(),
        "xs": xs.tolist(),
        "ys": ys.tolist(),
        "rows": rows.tolist(),
        "cols": cols.tolist(),
    }


def heat_view(
    key: str,
    image_uri: str,
    size: tuple[int, int],
    heat: dict,
    boxes: list[dict],
    view_scale: float = 1.0,
    max_height: int = 560,
    on_click=None,
    alt: str = "heatmap over the photo",
):
    """Mount the view.

    Args:
        key: the element's key.
        image_uri: the overlay (photo and heatmap) as a data URI.
        size: (height, width) of that image in pixels.
        heat: :func:`heat_grid` of the heatmap shown.
        boxes: per detection ``{"x1", "y1", "x2", "y2", "label", "colour" ("#rrggbb"),
            "chosen", "dim"}`` in the image's pixels.
        view_scale: the image's pixels per original-photo pixel (for the hover text).
        max_height: the view is at most this many CSS pixels high.
        on_click: called (no arguments) when a box is clicked; the box's index is then
            ``st.session_state[key].clicked``.
    """
    height, width = size
    data = {
        "image": image_uri,
        "width": width,
        "height": height,
        "heat": heat,
        "boxes": boxes,
        "view_scale": view_scale,
        "max_height": max_height,
        "alt": alt,
        "help": "Click a box to explain it · hover for values and grid cells · wheel to "
        "zoom, drag to pan, double-click to reset",
    }
    return _component()(key=key, data=data, on_clicked_change=on_click or (lambda: None))

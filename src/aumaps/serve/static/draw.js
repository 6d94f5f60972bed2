// Drawing faces: AU maps where they sit, boxes, and intensity bars (photos and live share it).
//
// A face carries its (A, n, n) maps as bytes (0-255 = intensity 0-5) and `map_to_image`, the
// affine from map pixels to image pixels. As aumaps.visualise.draw_faces does, each pixel
// takes the colour of the strongest shown AU there, more opaque the higher its map.

import { el } from './api.js';

const MIN_INTENSITY = 0.25;   // below this a map is not drawn (as draw_faces)
const MAX_INTENSITY = 5;
const decoded = new WeakMap();

function mapBytes(face) {
  if (!decoded.has(face)) {
    const raw = atob(face.maps);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    decoded.set(face, bytes);
  }
  return decoded.get(face);
}

function rgb(hex) {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

// One face's maps on ctx. `scale`: canvas pixels per image pixel; `shown(a)`: is AU index a on.
export function drawMaps(ctx, face, aus, { scale = 1, opacity = 0.7, shown = () => true } = {}) {
  const n = face.map_size;
  const maps = mapBytes(face);
  const colours = aus.map((a) => rgb(a.colour));
  const layer = new ImageData(n, n);
  const floor = (MIN_INTENSITY / MAX_INTENSITY) * 255;
  for (let p = 0; p < n * n; p++) {
    let best = -1; let value = 0;
    for (let a = 0; a < aus.length; a++) {
      const v = maps[a * n * n + p];
      if (v > value && shown(a)) { value = v; best = a; }
    }
    if (best < 0 || value < floor) continue;
    const [r, g, b] = colours[best];
    layer.data.set([r, g, b, Math.round(255 * opacity * Math.sqrt(value / 255))], 4 * p);
  }
  const tile = document.createElement('canvas');
  tile.width = n; tile.height = n;
  tile.getContext('2d').putImageData(layer, 0, 0);
  const [[a, c, e], [b, d, f]] = face.map_to_image;
  ctx.save();
  ctx.setTransform(scale * a, scale * b, scale * c, scale * d, scale * e, scale * f);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(tile, 0, 0);
  ctx.restore();
}

export function drawBox(ctx, face, scale = 1) {
  const [x0, y0, x1, y1] = face.box.map((v) => v * scale);
  ctx.save();
  ctx.strokeStyle = '#fff';
  ctx.lineWidth = Math.max(1.5, ctx.canvas.width / 500);
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.fillStyle = '#fff';
  ctx.font = `${Math.max(12, Math.round(ctx.canvas.width / 45))}px system-ui, sans-serif`;
  ctx.fillText(`face ${face.face_id}`, x0, Math.max(y0 - 5, 12));
  ctx.restore();
}

// Intensity bars of one face: one row per AU with its FACS name; values in data-value.
export function bars(face, aus, title) {
  return el('div', { class: 'bars', 'data-face': face.face_id },
    el('h4', {}, title ?? `face ${face.face_id}`),
    aus.map((au, i) => {
      const v = face.intensities[i];
      return el('div', { class: 'bar-row', 'data-au': au.au, 'data-value': v.toFixed(4) },
        el('span', { class: 'bar-name' }, el('span', { class: 'swatch', style: { background: au.colour } }),
          `${au.label} ${au.name}`),
        el('span', { class: 'bar-track' },
          el('span', { class: 'bar-fill', style: { width: `${(100 * Math.min(Math.max(v, 0), MAX_INTENSITY)) / MAX_INTENSITY}%`, background: au.colour } })),
        el('span', { class: 'bar-value' }, v.toFixed(2)));
    }));
}

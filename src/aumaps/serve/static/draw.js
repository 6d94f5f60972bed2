// Drawing faces: AU maps where they sit, boxes, and intensity bars (photos and live share it).
//
// A face carries its (A, n, n) maps as bytes (0-255 = intensity 0-5) and `map_to_image`, the
// affine from map pixels to image pixels. As aumaps.visualise.draw_faces does, each pixel
// takes the colour of the strongest shown AU there, more opaque the higher its map; only AUs
// reading at least MIN_SHOWN are drawn, each with its number on a chip of its colour beside
// its peak. Bars are grouped by face region (upper face: brows, lids, cheeks; lower face).

import { el } from './api.js';

const MIN_INTENSITY = 0.25;   // below this a map is not drawn (as draw_faces)
const MIN_SHOWN = 0.5;        // AUs reading less get no map and no chip (as draw_faces)
const MAX_INTENSITY = 5;

// The AUs by face region, upper face first, each in the given order:
// [{region, title, items: [{au, index}]}] (index: the AU's place in `aus` and the intensities).
export function groupsOf(aus) {
  const groups = [];
  for (const region of ['upper', 'lower']) {
    const items = aus.map((au, index) => ({ au, index })).filter(({ au }) => (au.region || 'lower') === region);
    if (items.length) groups.push({ region, title: items[0].au.region_title || region, items });
  }
  return groups;
}
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
  const drawn = aus.map((_, a) => a).filter((a) => shown(a) && face.intensities[a] >= MIN_SHOWN);
  for (let p = 0; p < n * n; p++) {
    let best = -1; let value = 0;
    for (const a of drawn) {
      const v = maps[a * n * n + p];
      if (v > value) { value = v; best = a; }
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

// Each shown AU's number on a chip of its colour beside its peak (strongest first; a chip that
// would cover another, or a rectangle of `avoid`, tries the point's other sides, else is left
// out), as draw_faces does.
export function drawChips(ctx, face, aus, { scale = 1, shown = () => true, avoid = [] } = {}) {
  const side = Math.max(face.box[2] - face.box[0], face.box[3] - face.box[1]) * scale;
  if (!(side >= 60)) return;
  const size = Math.round(Math.min(Math.max(side / 14, 10), 22));
  const pad = Math.max(2, Math.round(size / 6));
  ctx.save();
  ctx.font = `600 ${size}px system-ui, sans-serif`;
  ctx.textBaseline = 'middle';
  const taken = avoid.filter(Boolean).map((r) => [...r]);  // [x, y, w, h]: the faces' labels
  const order = aus.map((_, a) => a).filter((a) => shown(a) && face.intensities[a] >= MIN_SHOWN && face.argmax[a])
    .sort((a, b) => face.intensities[b] - face.intensities[a]);
  for (const a of order) {
    const [x, y] = face.argmax[a].map((v) => v * scale);
    const text = String(aus[a].au);
    const w = ctx.measureText(text).width + 2 * pad; const h = size + 2 * pad; const gap = 4;
    const spot = [[gap, -h - gap], [-w - gap, -h - gap], [gap, gap], [-w - gap, gap]]
      .map(([dx, dy]) => [x + dx, y + dy])
      .find(([cx, cy]) => cx >= 0 && cy >= 0 && cx + w <= ctx.canvas.width && cy + h <= ctx.canvas.height &&
        !taken.some(([tx, ty, tw, th]) => cx < tx + tw && tx < cx + w && cy < ty + th && ty < cy + h));
    if (!spot) continue;
    const [cx, cy] = spot;
    const [r, g, b] = rgb(aus[a].colour);
    ctx.fillStyle = aus[a].colour;
    ctx.fillRect(cx, cy, w, h);
    ctx.fillStyle = 0.299 * r + 0.587 * g + 0.114 * b > 150 ? '#000' : '#fff';
    ctx.fillText(text, cx + pad, cy + h / 2 + 1);
    taken.push([cx, cy, w, h]);
  }
  ctx.restore();
}

// The face's box and its label; returns the label's rectangle [x, y, w, h] (chips keep off it).
export function drawBox(ctx, face, scale = 1) {
  const [x0, y0, x1, y1] = face.box.map((v) => v * scale);
  ctx.save();
  ctx.strokeStyle = '#fff';
  ctx.lineWidth = Math.max(1.5, ctx.canvas.width / 500);
  ctx.strokeRect(x0, y0, x1 - x0, y1 - y0);
  ctx.fillStyle = '#fff';
  const size = Math.max(12, Math.round(ctx.canvas.width / 45));
  ctx.font = `${size}px system-ui, sans-serif`;
  const text = `face ${face.face_id}`; const y = Math.max(y0 - 5, 12);
  ctx.fillText(text, x0, y);
  const width = ctx.measureText(text).width;
  ctx.restore();
  return [x0, y - size, width, size + 3];
}

// Intensity bars of one face: one row per AU with its FACS name, grouped by face region
// (upper face, lower face); values in data-value. `shown(i)`: AU index i is switched on
// (rows of AUs switched off are dimmed, their values still shown).
export function bars(face, aus, title, shown = () => true) {
  return el('div', { class: 'bars', 'data-face': face.face_id },
    el('h4', {}, title ?? `face ${face.face_id}`),
    groupsOf(aus).map((group) => el('div', { class: 'bar-group', 'data-region': group.region },
      el('h5', {}, group.title),
      group.items.map(({ au, index }) => {
        const v = face.intensities[index];
        return el('div', { class: shown(index) ? 'bar-row' : 'bar-row off', 'data-au': au.au, 'data-value': v.toFixed(4), title: au.name },
          el('span', { class: 'bar-name' }, el('span', { class: 'swatch', style: { background: au.colour } }),
            `${au.label} ${au.name}`),
          el('span', { class: 'bar-track' },
            el('span', { class: 'bar-fill', style: { width: `${(100 * Math.min(Math.max(v, 0), MAX_INTENSITY)) / MAX_INTENSITY}%`, background: au.colour } })),
          el('span', { class: 'bar-value' }, v.toFixed(2)));
      }))));
}

// Check boxes for the AUs, grouped by face region, each group with a box of its own that
// switches the whole group (checked: all on; mixed: some). `hidden`: the set of AU numbers
// switched off, changed in place; `onChange()` is called after each change.
export function auToggles(aus, hidden, onChange) {
  const groups = groupsOf(aus);
  const boxes = [];
  const sync = () => {
    for (const { box, numbers } of boxes) {
      const off = numbers.filter((n) => hidden.has(n)).length;
      box.checked = off === 0;
      box.indeterminate = off > 0 && off < numbers.length;
    }
  };
  const nodes = groups.map((group) => {
    const numbers = group.items.map(({ au }) => au.au);
    const groupBox = el('input', {
      type: 'checkbox', 'data-region': group.region,
      onchange: (e) => {
        for (const n of numbers) { if (e.target.checked) hidden.delete(n); else hidden.add(n); }
        update(); onChange();
      },
    });
    boxes.push({ box: groupBox, numbers });
    const items = group.items.map(({ au }) => el('label', { title: au.name }, el('input', {
      type: 'checkbox', 'data-au': au.au, checked: !hidden.has(au.au),
      onchange: (e) => { if (e.target.checked) hidden.delete(au.au); else hidden.add(au.au); update(); onChange(); },
    }), el('span', { class: 'swatch', style: { background: au.colour } }), `${au.label} ${au.name}`));
    return el('fieldset', { class: 'toggle-group', 'data-region': group.region },
      el('legend', {}, el('label', {}, groupBox, ` ${group.title}`)), items);
  });
  function update() {
    for (const input of nodes.flatMap((node) => [...node.querySelectorAll('input[data-au]')])) {
      input.checked = !hidden.has(Number(input.dataset.au));
    }
    sync();
  }
  sync();
  return nodes;
}

// Several faces' intensities in one table: an AU per row (grouped by face region), a face per
// column, each cell a small bar and the value (data-value). Easier to compare than a list of
// bars per face, and as short for 17 AUs and a group photo. `shown(i)`: as in bars().
export function faceTable(faces, aus, shown = () => true) {
  return el('table', { class: 'face-bars' },
    el('thead', {}, el('tr', {}, el('th', {}), faces.map((f) => el('th', { 'data-face': f.face_id }, `face ${f.face_id}`)))),
    groupsOf(aus).map((group) => el('tbody', { 'data-region': group.region },
      el('tr', { class: 'group' }, el('th', { colspan: faces.length + 1 }, group.title)),
      group.items.map(({ au, index }) => el('tr', { class: shown(index) ? '' : 'off', 'data-au': au.au, title: au.name },
        el('th', {}, el('span', { class: 'swatch', style: { background: au.colour } }), `${au.label} ${au.name}`),
        faces.map((f) => {
          const v = f.intensities[index];
          return el('td', { 'data-face': f.face_id, 'data-value': v.toFixed(4) },
            el('span', { class: 'bar-track mini' },
              el('span', { class: 'bar-fill', style: { width: `${(100 * Math.min(Math.max(v, 0), MAX_INTENSITY)) / MAX_INTENSITY}%`, background: au.colour } })),
            el('span', { class: 'bar-value' }, v.toFixed(2)));
        }))))));
}

// One face: its bars; several: their table.
export function intensities(faces, aus, shown = () => true) {
  return faces.length > 1 ? [faceTable(faces, aus, shown)] : faces.map((f) => bars(f, aus, undefined, shown));
}

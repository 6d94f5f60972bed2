// The Photos panel: upload images, draw each face's maps where they sit, bars, a table, downloads.

import { api, dropTarget, el, notify, upload } from './api.js';
import { bars, drawBox, drawMaps } from './draw.js';

const photos = [];          // server summaries, in upload order
const hidden = new Set();   // AU numbers switched off
const knownAus = new Map(); // AU number -> {label, name, colour}

function settings() {
  return {
    opacity: Number(document.getElementById('opacity').value),
    boxes: document.getElementById('show-boxes').checked,
  };
}

function render(photo) {
  const { opacity, boxes } = settings();
  const ctx = photo.canvas.getContext('2d');
  ctx.drawImage(photo.image, 0, 0, photo.canvas.width, photo.canvas.height);
  for (const face of photo.faces) {
    drawMaps(ctx, face, photo.aus, { scale: photo.scale, opacity, shown: (a) => !hidden.has(photo.aus[a].au) });
    if (boxes) drawBox(ctx, face, photo.scale);
  }
}

function renderAll() {
  photos.filter((p) => p.canvas).forEach(render);
}

function updateToggles() {
  const box = document.getElementById('au-toggles');
  box.replaceChildren(...[...knownAus.entries()].sort((a, b) => a[0] - b[0]).map(([number, au]) =>
    el('label', {}, el('input', {
      type: 'checkbox', 'data-au': number, checked: !hidden.has(number),
      onchange: (e) => { if (e.target.checked) hidden.delete(number); else hidden.add(number); renderAll(); },
    }), el('span', { class: 'swatch', style: { background: au.colour } }), `${au.label} ${au.name}`)));
  document.getElementById('photo-controls').hidden = photos.length === 0;
}

function updateTable() {
  const done = photos.filter((p) => p.faces);
  const table = document.getElementById('photo-table');
  const csv = document.getElementById('photos-csv');
  csv.href = `/api/photos.csv?ids=${done.map((p) => p.id).join(',')}`;
  const aus = [...knownAus.entries()].sort((a, b) => a[0] - b[0]);
  const rows = done.flatMap((p) => p.faces.map((f) => [p.name, f.face_id,
    ...aus.map(([number]) => { const i = p.aus.findIndex((a) => a.au === number); return i < 0 ? '–' : f.intensities[i].toFixed(2); })]));
  table.hidden = rows.length === 0;
  table.replaceChildren(
    el('thead', {}, el('tr', {}, ['file', 'face', ...aus.map(([, au]) => `${au.label} ${au.name}`)].map((h) => el('th', {}, h)))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((v) => el('td', {}, String(v)))))));
}

function card(name) {
  const node = el('div', { class: 'card photo' }, el('h2', {}, name), el('p', { class: 'message note' }, 'analysing…'));
  document.getElementById('photo-list').prepend(node);
  return node;
}

async function analyse(file) {
  const node = card(file.name);
  const message = node.querySelector('.message');
  let photo;
  try {
    photo = await upload('/api/photos', file);
    photo.image = new Image();
    photo.image.src = `/api/photos/${photo.id}/image`;
    await photo.image.decode();
  } catch (err) {
    message.className = 'message';
    message.textContent = err.message;
    node.dataset.state = 'error';
    return;
  }
  photo.aus.forEach((au) => knownAus.set(au.au, au));
  photo.canvas = el('canvas', { width: photo.image.naturalWidth, height: photo.image.naturalHeight });
  photos.push(photo);
  render(photo);
  message.className = photo.message ? 'message' : 'message note';
  message.textContent = photo.message || `${photo.faces.length} face${photo.faces.length === 1 ? '' : 's'} · model ${photo.model}`;
  const downloads = el('p', { class: 'downloads' }, photo.faces.map((f) =>
    el('a', { href: `/api/photos/${photo.id}/overlay/${f.face_id}`, download: '' }, `overlay PNG, face ${f.face_id}`)),
    el('button', { class: 'button delete', onclick: () => remove(photo, node) }, 'Delete'));
  node.append(el('div', { class: 'photo-row' }, photo.canvas,
    el('div', { class: 'bars-box' }, photo.faces.map((f) => bars(f, photo.aus)))), downloads);
  node.dataset.state = 'done';
  node.dataset.photo = photo.id;
  updateToggles();
  updateTable();
}

// Forget a photo on the server (nothing of it stays there) and take it off the page.
async function remove(photo, node) {
  try { await api(`/api/photos/${photo.id}`, { method: 'DELETE' }); } catch (err) {
    if (!(err.status === 404 || err.status === 410)) { notify(err.message); return; }
  }
  photos.splice(photos.indexOf(photo), 1);
  node.remove();
  updateToggles();
  updateTable();
}

export function setupPhotos() {
  dropTarget(document.getElementById('photo-drop'), document.getElementById('photo-input'), async (files) => {
    notify('');
    for (const file of files) await analyse(file);  // one at a time: the server has the CPU
  });
  document.getElementById('opacity').addEventListener('input', renderAll);
  document.getElementById('show-boxes').addEventListener('change', renderAll);
}

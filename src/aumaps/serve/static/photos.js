// The Photos panel: upload images, draw each face's maps where they sit, bars, a table, downloads.

import { api, dropTarget, el, notify, upload } from './api.js';
import { auToggles, drawBox, drawChips, drawMaps, groupsOf, intensities } from './draw.js';

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
  const shown = (a) => !hidden.has(photo.aus[a].au);
  ctx.drawImage(photo.image, 0, 0, photo.canvas.width, photo.canvas.height);
  const labels = [];
  for (const face of photo.faces) {
    drawMaps(ctx, face, photo.aus, { scale: photo.scale, opacity, shown });
    if (boxes) labels.push(drawBox(ctx, face, photo.scale));
  }
  for (const face of photo.faces) drawChips(ctx, face, photo.aus, { scale: photo.scale, shown, avoid: labels });
  if (photo.bars) photo.bars.replaceChildren(...intensities(photo.faces, photo.aus, shown));
}

function renderAll() {
  photos.filter((p) => p.canvas).forEach(render);
}

// Every AU of the photos' models, in AU order (grouped by face region where shown).
function allAus() {
  return [...knownAus.values()].sort((a, b) => a.au - b.au);
}

function updateToggles() {
  document.getElementById('au-toggles').replaceChildren(...auToggles(allAus(), hidden, renderAll));
  document.getElementById('photo-controls').hidden = photos.length === 0;
}

function updateTable() {
  const done = photos.filter((p) => p.faces);
  const table = document.getElementById('photo-table');
  const csv = document.getElementById('photos-csv');
  csv.href = `/api/photos.csv?ids=${done.map((p) => p.id).join(',')}`;
  const groups = groupsOf(allAus());
  const aus = groups.flatMap((g) => g.items.map(({ au }) => au));
  const rows = done.flatMap((p) => p.faces.map((f) => [p.name, f.face_id,
    ...aus.map((au) => { const i = p.aus.findIndex((a) => a.au === au.au); return i < 0 ? '–' : f.intensities[i].toFixed(2); })]));
  table.hidden = rows.length === 0;
  table.replaceChildren(
    el('thead', {},
      el('tr', { class: 'groups' }, el('th', { colspan: 2 }),
        groups.map((g) => el('th', { colspan: g.items.length, 'data-region': g.region }, g.title))),
      el('tr', {}, el('th', {}, 'file'), el('th', {}, 'face'),
        aus.map((au) => el('th', { title: au.name, 'data-au': au.au },
          el('span', { class: 'swatch', style: { background: au.colour } }), au.label, el('br'), el('small', {}, au.short || au.name))))),
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
  photo.bars = el('div', { class: 'bars-box' }, intensities(photo.faces, photo.aus, (a) => !hidden.has(photo.aus[a].au)));
  node.append(el('div', { class: 'photo-row' }, photo.canvas, photo.bars), downloads);
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

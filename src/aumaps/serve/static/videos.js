// The Videos panel: each upload becomes a server job; progress is polled, the report shown.
// Job ids live in the address (?job=…), so a reload finds the jobs again.

import { api, dropTarget, el, notify, setUrlParams, upload } from './api.js';

const jobs = new Map();  // id -> {node, status}
const POLL_MS = 500;

function saveIds() {
  setUrlParams({ job: [...jobs.keys()] });
}

function describe(status) {
  const frames = status.frame_count ? `${status.frames_done} / ${status.frame_count} frames` : `${status.frames_done} frames`;
  switch (status.state) {
    case 'queued': return 'waiting for a free worker…';
    case 'running': return `analysing: ${frames}`;
    case 'done': {
      const s = status.summary;
      return `done: ${s.frames} frames, ${s.frames_with_face} with a face, ${s.fps} frames/s · model ${status.model}`;
    }
    case 'cancelled': return status.message || 'cancelled';
    default: return status.message || status.state;
  }
}

function keptFor(status) {
  if (status.expires_in === null || status.expires_in === undefined) return '';
  const hours = status.expires_in / 3600;
  const left = hours >= 1 ? `${hours.toFixed(hours < 10 ? 1 : 0)} h` : `${Math.ceil(status.expires_in / 60)} min`;
  return ` · kept on the server for ${left} more (--retention)`;
}

function showResults(job, status) {
  const { node } = job;
  const out = status.outputs;
  const links = el('p', { class: 'downloads' },
    out.csv && el('a', { href: out.csv, download: '' }, 'Download CSV'),
    out.overlay && el('a', { href: out.overlay, download: '' }, 'Download overlay video (WebM)'),
    out.report && el('a', { href: out.report, target: '_blank' }, 'Open the report'));
  const parts = [links];
  if (out.overlay) parts.push(el('video', { src: out.overlay, controls: true, preload: 'metadata', class: 'overlay-video' }));
  if (out.report) {
    const frame = el('iframe', { src: out.report, sandbox: 'allow-same-origin', title: `report of ${status.name}`, class: 'report' });
    frame.addEventListener('load', () => {
      try { frame.style.height = `${frame.contentDocument.documentElement.scrollHeight + 20}px`; } catch { /* keep the default */ }
    });
    parts.push(frame);
  }
  node.querySelector('.results').replaceChildren(...parts);
}

function update(job, status) {
  const previous = job.status;
  job.status = status;
  const { node } = job;
  node.dataset.state = status.state;
  node.querySelector('h2').textContent = status.name;
  const bar = node.querySelector('progress');
  if (status.fraction === null) bar.removeAttribute('value'); else bar.value = status.fraction;
  bar.hidden = ['done', 'failed', 'cancelled'].includes(status.state);
  const message = node.querySelector('.message');
  message.textContent = describe(status) + (status.state === 'done' && status.message ? ` — ${status.message}` : '') + keptFor(status);
  message.className = ['failed', 'cancelled'].includes(status.state) || (status.state === 'done' && status.message) ? 'message' : 'message note';
  node.querySelector('.problems').textContent = status.problems.join(' · ');
  node.querySelector('.cancel').hidden = !['queued', 'running'].includes(status.state);
  if (status.state === 'done' && (!previous || previous.state !== 'done')) showResults(job, status);
}

function addCard(id, name) {
  const node = el('div', { class: 'card job', 'data-job': id },
    el('h2', {}, name),
    el('progress', { max: 1 }),
    el('p', { class: 'message note' }, 'uploading…'),
    el('p', { class: 'problems hint' }),
    el('p', {}, el('button', { class: 'button cancel', onclick: () => cancel(node.dataset.job) }, 'Stop'),
      ' ', el('button', { class: 'button delete', onclick: () => remove(node.dataset.job, node) }, 'Delete'),
      el('span', { class: 'hint' }, ' (the job and its files, from the server too)')),
    el('div', { class: 'results' }));
  document.getElementById('job-list').prepend(node);
  return node;
}

async function poll(id) {
  const job = jobs.get(id);
  if (!job) return;
  try {
    update(job, await api(`/api/jobs/${id}`));
  } catch (err) {
    job.node.dataset.state = 'error';
    job.node.querySelector('.message').className = 'message';
    job.node.querySelector('.message').textContent = err.message;
    return;
  }
  if (!['done', 'failed', 'cancelled'].includes(job.status.state)) setTimeout(() => poll(id), POLL_MS);
}

async function cancel(id) {
  try { update(jobs.get(id), await api(`/api/jobs/${id}/cancel`, { method: 'POST' })); } catch (err) { notify(err.message); }
}

// Delete the job on the server (its upload and outputs) and take it off the page.
async function remove(id, node) {
  if (id) {
    try { await api(`/api/jobs/${id}`, { method: 'DELETE' }); } catch (err) {
      if (!(err.status === 404 || err.status === 410)) { notify(err.message); return; }
    }
  }
  node.remove();
  jobs.delete(id);
  saveIds();
}

async function submit(file) {
  const node = addCard('', file.name);
  let status;
  try {
    status = await upload('/api/jobs', file);
  } catch (err) {
    node.dataset.state = 'error';
    node.querySelector('progress').hidden = true;
    node.querySelector('.message').className = 'message';
    node.querySelector('.message').textContent = err.message;
    return;
  }
  node.dataset.job = status.id;
  jobs.set(status.id, { node, status: null });
  saveIds();
  update(jobs.get(status.id), status);
  poll(status.id);
}

export function setupVideos() {
  dropTarget(document.getElementById('video-drop'), document.getElementById('video-input'), (files) => {
    notify('');
    files.forEach(submit);
  });
  for (const id of new URL(location.href).searchParams.getAll('job')) {
    if (jobs.has(id)) continue;
    jobs.set(id, { node: addCard(id, 'video job'), status: null });
    poll(id);
  }
}

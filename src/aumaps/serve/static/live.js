// The Live panel: camera frames to the server over a WebSocket, results drawn over the video.
//
// Every camera frame is offered; one is sent only when the socket's buffer is empty, and
// the server keeps only the newest frame it has not analysed, so nothing queues up. Each
// result is drawn on the canvas over the video together with the very frame it was computed
// on (kept as the JPEG sent), so the maps sit exactly where they were found.
// window.aumapsLive holds the figures shown (for tests and the benchmark).

import { api, el, notify, state } from './api.js';
import { auToggles, drawBox, drawChips, drawMaps, groupsOf, intensities } from './draw.js';

const SERIES_SECONDS = 20;
// panels: what the last 20 seconds show, [{region ('upper', 'lower'; 'all' for up to 8 AUs), aus: [AU numbers drawn]}]
const stats = { drawn: 0, sent: 0, fps: 0, latencies: [], serverMs: [], last: null, recording: null, error: null, panels: [] };
window.aumapsLive = stats;

let ws = null;
let stream = null;
let aus = [];
const hidden = new Set();  // AU numbers switched off: no map, no line in the series, bar dimmed
let maxRows = 0;            // the recording's cap, as the server announces it
let recordingWarning = null; // the server's note when the recording nears its cap
let frameId = 0;
let encoding = false;
let running = false;
const series = [];     // {t, values | null}
const sentFrames = new Map(); // frame id -> {blob, captured}: the frames a result may come back for
let lastDrawn = 0;             // id of the newest frame drawn
let lastResult = null;         // {result, frame (ImageBitmap), width, height} of the newest drawn
const drawnTimes = []; // performance.now() of recent drawn results

const $ = (id) => document.getElementById(id);

function message(text, note = false) {
  $('live-message').textContent = text || '';
  $('live-message').className = note ? 'message note' : 'message';
}

function sendFrame(video, grab) {
  if (!running || encoding || !ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > 0) return;
  if (!video.videoWidth) return;
  encoding = true;
  grab.width = video.videoWidth;
  grab.height = video.videoHeight;
  const captured = performance.now();
  grab.getContext('2d').drawImage(video, 0, 0);
  const socket = ws;
  grab.toBlob(async (blob) => {
    try {
      if (!blob) return;
      const body = new Uint8Array(await blob.arrayBuffer());
      // the view may have been stopped (or restarted on a new socket) while the frame was encoded
      if (!running || socket !== ws || socket.readyState !== WebSocket.OPEN) return;
      const packet = new Uint8Array(12 + body.length);
      const view = new DataView(packet.buffer);
      view.setUint32(0, ++frameId, true);
      sentFrames.set(frameId, { blob, captured });
      for (const [id, old] of sentFrames) if (old.captured < captured - 3000) sentFrames.delete(id); else break;
      view.setFloat64(4, captured, true);
      packet.set(body, 12);
      socket.send(packet);
      stats.sent += 1;
    } finally {
      encoding = false;
    }
  }, 'image/jpeg', 0.8);
}

function loop(video, grab) {
  if (!running) return;
  sendFrame(video, grab);
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(() => loop(video, grab));
  else setTimeout(() => loop(video, grab), 15);
}

// The last 20 seconds of the first face: a line per AU switched on, its number at the line's
// end (moved apart where ends crowd); for more than eight AUs a panel per face region.
function drawSeries(now) {
  const canvas = $('live-series');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  while (series.length && series[0].t < now - SERIES_SECONDS * 1000) series.shift();
  // more than eight AUs (OpenFace's 17): a panel per face region; fewer share one
  const groups = aus.length > 8 ? groupsOf(aus) : [{ region: 'all', title: '', items: aus.map((au, index) => ({ au, index })) }];
  const gap = 18;
  const panel = (width - gap * (groups.length - 1)) / Math.max(groups.length, 1);
  stats.panels = groups.map((group, g) => ({
    region: group.region, aus: drawPanel(ctx, group, g * (panel + gap), panel, height, now),
  }));
}

function drawPanel(ctx, group, x0, panelWidth, height, now) {
  const left = x0 + 24; const right = x0 + panelWidth - 28; const top = 22; const bottom = height - 18;
  const toY = (v) => bottom - (Math.min(Math.max(v, 0), 5) / 5) * (bottom - top);
  ctx.save();
  ctx.font = '11px system-ui, sans-serif';
  ctx.strokeStyle = '#d8dee4'; ctx.fillStyle = '#5b636d'; ctx.lineWidth = 1;
  for (let v = 0; v <= 5; v++) {
    ctx.beginPath(); ctx.moveTo(left, toY(v)); ctx.lineTo(right, toY(v)); ctx.stroke();
    ctx.fillText(String(v), x0 + 8, toY(v) + 4);
  }
  ctx.fillText(`−${SERIES_SECONDS} s`, left, height - 4);
  ctx.fillText('now', right - 20, height - 4);
  ctx.font = '600 12px system-ui, sans-serif'; ctx.fillStyle = '#1f2328';
  ctx.fillText(group.title, left, 13);
  const drawn = []; const ends = [];
  for (const { au, index } of group.items) {
    if (hidden.has(au.au)) continue;
    ctx.strokeStyle = au.colour; ctx.lineWidth = 2; ctx.beginPath();
    let pen = false; let end = null;
    for (const s of series) {
      if (!s.values) { pen = false; continue; }
      const x = left + ((s.t - (now - SERIES_SECONDS * 1000)) / (SERIES_SECONDS * 1000)) * (right - left);
      const y = toY(s.values[index]);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true; end = y;
    }
    ctx.stroke();
    drawn.push(au.au);
    if (end !== null) ends.push({ y: end, au });
  }
  // the AU numbers at the lines' ends, at least a label's height apart
  ends.sort((a, b) => a.y - b.y);
  const step = 11;
  for (let i = 1; i < ends.length; i++) ends[i].y = Math.max(ends[i].y, ends[i - 1].y + step);
  for (let i = ends.length - 1; i >= 0; i--) {  // those pushed below the axis go back up
    ends[i].y = Math.min(ends[i].y, i === ends.length - 1 ? bottom + 3 : ends[i + 1].y - step);
  }
  ctx.font = '600 10px system-ui, sans-serif';
  for (const e of ends) {
    ctx.fillStyle = e.au.colour;
    ctx.fillText(String(e.au.au), right + 4, Math.max(e.y, top - 6) + 4);
  }
  ctx.restore();
  return drawn;
}

// The check boxes (in a fold above the video): they switch AUs' maps, chips and lines.
function showToggles() {
  const count = () => {
    const on = aus.filter((au) => !hidden.has(au.au)).length;
    $('live-aus-count').textContent = on === aus.length ? `all ${aus.length}` : `${on} of ${aus.length}`;
  };
  $('live-toggles').replaceChildren(...auToggles(aus, hidden, () => {
    count();
    drawSeries(performance.now());
    if (lastResult) drawResult();
  }));
  count();
}

// The newest result over the frame it was computed on: maps and chips of the AUs switched
// on, face boxes, and the bars (redrawn as they are when AUs are switched on or off).
function drawResult() {
  const { result, frame, width, height } = lastResult;
  const canvas = $('live-canvas');
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width; canvas.height = height;
  }
  const ctx = canvas.getContext('2d');
  if (frame) ctx.drawImage(frame, 0, 0, canvas.width, canvas.height); else ctx.clearRect(0, 0, canvas.width, canvas.height);
  const scale = canvas.width / result.width;
  const shown = (a) => !hidden.has(aus[a].au);
  const labels = [];
  for (const face of result.faces) {
    drawMaps(ctx, face, aus, { scale, opacity: 0.65, shown });
    labels.push(drawBox(ctx, face, scale));
  }
  for (const face of result.faces) drawChips(ctx, face, aus, { scale, shown, avoid: labels });
  $('live-bars').replaceChildren(...intensities(result.faces, aus, shown));
}

async function onResult(result) {
  const sent = sentFrames.get(result.id);
  for (const id of sentFrames.keys()) if (id <= result.id) sentFrames.delete(id); else break;
  const frame = sent ? await createImageBitmap(sent.blob) : null;
  if (result.id <= lastDrawn) { if (frame) frame.close(); return; }  // a newer one was drawn meanwhile
  lastDrawn = result.id;
  const video = $('live-video');
  if (lastResult && lastResult.frame) lastResult.frame.close();
  lastResult = { result, frame, width: video.videoWidth, height: video.videoHeight };
  drawResult();
  message(result.message || '', !result.message);
  const now = performance.now();
  series.push({ t: now, values: result.faces.length ? result.faces[0].intensities : null });
  drawSeries(now);
  // figures: frames drawn in the last second, capture -> drawn latency
  drawnTimes.push(now);
  while (drawnTimes.length && drawnTimes[0] < now - 1000) drawnTimes.shift();
  stats.drawn += 1;
  stats.fps = drawnTimes.length;
  const latency = now - result.captured;
  stats.latencies.push(latency);
  stats.serverMs.push(result.server_ms);
  if (stats.latencies.length > 20000) { stats.latencies.shift(); stats.serverMs.shift(); }
  stats.last = { id: result.id, faces: result.faces.length, intensities: result.faces.map((f) => f.intensities), server_ms: result.server_ms, skipped: result.skipped };
  $('live-fps').textContent = String(stats.fps);
  $('live-latency').textContent = latency.toFixed(0);
  if (result.recorded_rows !== null && result.recorded_rows !== undefined) showRecording(result.recorded_rows);
}

// The recording's progress beside its button: rows of the cap, and the server's warning near it.
function showRecording(rows) {
  const box = $('live-recording');
  box.textContent = `recording: ${rows.toLocaleString()} of ${maxRows.toLocaleString()} rows` +
    (recordingWarning ? ` — ${recordingWarning}` : ' (it stops by itself there)');
  box.className = recordingWarning ? 'message' : '';
}

// Recording: the server announces its cap as it starts, warns near it, stops at it; a stopped
// recording is a CSV file on the server, downloaded over HTTP (never one huge socket message).
function onRecording(msg) {
  const button = $('live-record');
  if (msg.max_rows) maxRows = msg.max_rows;
  button.classList.toggle('on', msg.on);
  button.textContent = msg.on ? '■ Stop recording' : '● Record';
  if (msg.on) {
    recordingWarning = msg.warning || null;
    showRecording(msg.rows);
    return;
  }
  recordingWarning = null;
  $('live-recording').textContent = '';
  $('live-recording').className = '';
  stats.recording = { rows: msg.rows, url: msg.url, filename: msg.filename };
  if (!msg.url) { $('live-download').replaceChildren(); return; }
  const link = el('a', { href: msg.url, download: msg.filename, id: 'live-csv' }, `${msg.filename} (${msg.rows.toLocaleString()} rows)`);
  const forget = el('button', { class: 'button', onclick: async () => {
    try { await api(msg.url, { method: 'DELETE' }); $('live-download').replaceChildren('Recording deleted from the server.'); } catch (err) { notify(err.message); }
  } }, 'Delete from the server');
  $('live-download').replaceChildren('Recording: ', link, ' ', forget, msg.message ? ` — ${msg.message}` : '');
  link.click();
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss' : 'ws';
  const socket = new WebSocket(`${proto}://${location.host}/ws/live?model=${encodeURIComponent(state.model)}`);
  ws = socket;
  ws.binaryType = 'arraybuffer';
  sentFrames.clear();
  lastDrawn = 0;
  if (lastResult && lastResult.frame) lastResult.frame.close();
  lastResult = null;  // its AUs may not be the new model's
  message('loading the model…', true);
  ws.onmessage = (event) => {
    if (socket !== ws) return;  // a message still arriving on a socket replaced or stopped
    const msg = JSON.parse(event.data);
    if (msg.type === 'ready') {
      aus = msg.aus;
      showToggles();
      maxRows = msg.max_recorded_rows;
      message('', true);
      $('live-record').disabled = false;
    } else if (msg.type === 'result') onResult(msg);
    else if (msg.type === 'recording') onRecording(msg);
    else if (msg.type === 'error') { stats.error = msg.message; message(msg.message); }  // the session goes on
  };
  ws.onclose = (event) => {
    if (socket !== ws) return;
    if (running) message(`the connection to the server closed${event.reason ? `: ${event.reason}` : ''}; press Start camera to try again`);
    stop(false);
  };
}

async function start() {
  notify('');
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    message('this browser gives pages no camera here (cameras need http://localhost or https)');
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480, frameRate: 30 }, audio: false });
  } catch (err) {
    message(`no camera: ${err.message || err.name} (allow this page to use the camera)`);
    return;
  }
  const video = $('live-video');
  video.srcObject = stream;
  await video.play();
  running = true;
  $('live-start').disabled = true;
  $('live-stop').disabled = false;
  connect();
  loop(video, document.createElement('canvas'));
}

function stop(closeSocket = true) {
  running = false;
  if (closeSocket && ws) {
    const socket = ws;
    if ($('live-record').classList.contains('on') && socket.readyState === WebSocket.OPEN) {
      // stopped while recording: ask for the recording first, close once it has come
      socket.onmessage = (event) => {
        const msg = JSON.parse(event.data);
        if (msg.type === 'recording' && !msg.on) { onRecording(msg); socket.close(); }
      };
      socket.onclose = null;
      socket.send(JSON.stringify({ type: 'record', on: false }));
      setTimeout(() => socket.close(), 10000);
    } else socket.close();
  }
  ws = null;
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $('live-start').disabled = false;
  $('live-stop').disabled = true;
  $('live-record').disabled = true;
}

export function setupLive() {
  $('live-start').addEventListener('click', start);
  $('live-stop').addEventListener('click', () => { stop(); message('stopped', true); });
  $('live-record').addEventListener('click', () => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ type: 'record', on: !$('live-record').classList.contains('on') }));
  });
  state.listeners.push(() => {  // another model: same camera, new session
    if (!running || !ws) return;
    ws.onclose = null;
    ws.close();
    series.length = 0;
    connect();
  });
}

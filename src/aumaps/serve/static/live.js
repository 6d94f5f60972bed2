// The Live panel: camera frames to the server over a WebSocket, results drawn over the video.
//
// Every camera frame is offered; one is sent only when the socket's buffer is empty, and
// the server keeps only the newest frame it has not analysed, so nothing queues up. Each
// result is drawn on the canvas over the video together with the very frame it was computed
// on (kept as the JPEG sent), so the maps sit exactly where they were found.
// window.aumapsLive holds the figures shown (for tests and the benchmark).

import { api, el, notify, state } from './api.js';
import { bars, drawBox, drawMaps } from './draw.js';

const SERIES_SECONDS = 20;
const stats = { drawn: 0, sent: 0, fps: 0, latencies: [], serverMs: [], last: null, recording: null, error: null };
window.aumapsLive = stats;

let ws = null;
let stream = null;
let aus = [];
let maxRows = 0;            // the recording's cap, as the server announces it
let recordingWarning = null; // the server's note when the recording nears its cap
let frameId = 0;
let encoding = false;
let running = false;
const series = [];     // {t, values | null}
const sentFrames = new Map(); // frame id -> {blob, captured}: the frames a result may come back for
let lastDrawn = 0;             // id of the newest frame drawn
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

function drawSeries(now) {
  const canvas = $('live-series');
  const ctx = canvas.getContext('2d');
  const { width, height } = canvas;
  const left = 30; const bottom = height - 18;
  ctx.clearRect(0, 0, width, height);
  ctx.strokeStyle = '#d8dee4'; ctx.fillStyle = '#5b636d'; ctx.font = '11px system-ui, sans-serif';
  for (let v = 0; v <= 5; v++) {
    const y = bottom - (v / 5) * (bottom - 8);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(width, y); ctx.stroke();
    ctx.fillText(String(v), 10, y + 4);
  }
  ctx.fillText(`−${SERIES_SECONDS} s`, left, height - 4);
  ctx.fillText('now', width - 26, height - 4);
  while (series.length && series[0].t < now - SERIES_SECONDS * 1000) series.shift();
  aus.forEach((au, a) => {
    ctx.strokeStyle = au.colour; ctx.lineWidth = 2; ctx.beginPath();
    let pen = false;
    for (const s of series) {
      if (!s.values) { pen = false; continue; }
      const x = left + ((s.t - (now - SERIES_SECONDS * 1000)) / (SERIES_SECONDS * 1000)) * (width - left);
      const y = bottom - (Math.min(Math.max(s.values[a], 0), 5) / 5) * (bottom - 8);
      if (pen) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      pen = true;
    }
    ctx.stroke();
  });
}

async function onResult(result) {
  const sent = sentFrames.get(result.id);
  for (const id of sentFrames.keys()) if (id <= result.id) sentFrames.delete(id); else break;
  const frame = sent ? await createImageBitmap(sent.blob) : null;
  if (result.id <= lastDrawn) { if (frame) frame.close(); return; }  // a newer one was drawn meanwhile
  lastDrawn = result.id;
  const canvas = $('live-canvas');
  const video = $('live-video');
  if (canvas.width !== video.videoWidth || canvas.height !== video.videoHeight) {
    canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  }
  const ctx = canvas.getContext('2d');
  if (frame) { ctx.drawImage(frame, 0, 0, canvas.width, canvas.height); frame.close(); } else ctx.clearRect(0, 0, canvas.width, canvas.height);
  const scale = canvas.width / result.width;
  for (const face of result.faces) {
    drawMaps(ctx, face, aus, { scale, opacity: 0.65 });
    drawBox(ctx, face, scale);
  }
  $('live-bars').replaceChildren(...result.faces.map((f) => bars(f, aus)));
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
  message('loading the model…', true);
  ws.onmessage = (event) => {
    if (socket !== ws) return;  // a message still arriving on a socket replaced or stopped
    const msg = JSON.parse(event.data);
    if (msg.type === 'ready') {
      aus = msg.aus;
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

// Talking to the aumaps server: JSON calls, raw-body uploads, the page's shared state.

export const state = {
  config: null,      // /api/config
  model: null,       // the model id chosen in the picker
  listeners: [],     // called with the new model id when the picker changes
};

export class ApiError extends Error {
  constructor(message, status = 0) { super(message); this.status = status; }
}

// fetch + JSON, throwing ApiError with the server's message on a 4xx/5xx.
export async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    throw new ApiError(`the aumaps server cannot be reached (${err.message}); is it still running?`);
  }
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    throw new ApiError((body && body.error) || text || `${response.status} ${response.statusText}`, response.status);
  }
  return body;
}

// Send a File as the raw request body (the server decides its type from its content).
export async function upload(path, file, params = {}) {
  const limit = state.config.max_upload_bytes;
  if (file.size > limit) {
    throw new ApiError(`'${file.name}' is ${(file.size / 2 ** 20).toFixed(1)} MB, more than this server accepts ` +
      `(${(limit / 2 ** 20).toFixed(0)} MB; start it with a larger --max-upload-mb)`);
  }
  const query = new URLSearchParams({ name: file.name, model: state.model, ...params });
  return api(`${path}?${query}`, {
    method: 'POST', body: file, headers: { 'Content-Type': 'application/octet-stream' },
  });
}

// A message for the whole page (errors that belong to no single item).
export function notify(message) {
  const box = document.getElementById('notice');
  box.textContent = message || '';
  box.hidden = !message;
}

// Small DOM helper: el('div', {class: 'x', style: {color: 'red'}}, child, 'text', ...).
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'style') Object.assign(node.style, value);  // CSSOM: allowed by the page's CSP
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// Make an element accept dropped files and wire a file input to the same handler.
export function dropTarget(zone, input, onFiles) {
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => {
    e.preventDefault();
    zone.classList.remove('over');
    if (e.dataTransfer && e.dataTransfer.files.length) onFiles([...e.dataTransfer.files]);
  });
  input.addEventListener('change', () => { onFiles([...input.files]); input.value = ''; });
}

// Keep some state in the address bar (so a reload finds it again).
export function setUrlParams(update) {
  const url = new URL(location.href);
  for (const [key, value] of Object.entries(update)) {
    url.searchParams.delete(key);
    for (const v of [].concat(value ?? [])) url.searchParams.append(key, v);
  }
  history.replaceState(null, '', url);
}

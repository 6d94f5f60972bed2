// The page: tabs, the model picker and its card; the panels live in their own modules.

import { api, el, notify, setUrlParams, state } from './api.js';
import { setupLive } from './live.js';
import { setupPhotos } from './photos.js';
import { setupVideos } from './videos.js';

const CARD_FIELDS = [
  ['description', 'Model'], ['aus', 'Action Units'], ['trained_on', 'Trained on'], ['notes', 'Note'],
  ['licence', 'Licence'], ['engine', 'Inference engine'], ['source', 'Source'], ['paper', 'Method'],
  ['input', 'Input'], ['error', 'Cannot be loaded'],
];

function showCard(model) {
  const card = model.card || {};
  const rows = CARD_FIELDS.filter(([key]) => card[key] !== undefined && card[key] !== '').map(([key, label]) => [
    el('dt', {}, label),
    el('dd', {}, Array.isArray(card[key]) ? card[key].map((a) => `AU${String(a).padStart(2, '0')}`).join(', ') : String(card[key])),
  ]);
  document.getElementById('card').replaceChildren(el('h3', {}, `Model card: ${card.name || model.id}`), el('dl', {}, rows));
}

function showTab(name) {
  for (const button of document.querySelectorAll('nav [data-tab]')) {
    const on = button.dataset.tab === name;
    button.setAttribute('aria-selected', String(on));
    document.getElementById(`tab-${button.dataset.tab}`).hidden = !on;
  }
  setUrlParams({ tab: name === 'photos' ? [] : name });
}

async function refreshModels() {
  state.config = await api('/api/config');
  const picker = document.getElementById('model');
  const wanted = state.model || new URL(location.href).searchParams.get('model') || state.config.initial_model;
  const ids = state.config.models.map((m) => m.id).join('\n');
  if (picker.dataset.ids !== ids) {  // rebuild only when the offer changed (not under an open list)
    picker.replaceChildren(...state.config.models.map((m) => el('option', { value: m.id }, m.label)));
    picker.dataset.ids = ids;
  }
  state.model = state.config.models.some((m) => m.id === wanted) ? wanted : state.config.initial_model;
  picker.value = state.model;
  showCard(state.config.models.find((m) => m.id === state.model));
}

async function main() {
  try {
    await refreshModels();
  } catch (err) {
    notify(err.message);
    return;
  }
  const picker = document.getElementById('model');
  picker.addEventListener('focus', () => refreshModels().catch((err) => notify(err.message)));
  picker.addEventListener('change', () => {
    state.model = picker.value;
    setUrlParams({ model: state.model === state.config.initial_model ? [] : state.model });
    showCard(state.config.models.find((m) => m.id === state.model));
    state.listeners.forEach((listener) => listener(state.model));
  });
  for (const button of document.querySelectorAll('nav [data-tab]')) {
    button.addEventListener('click', () => showTab(button.dataset.tab));
  }
  setupPhotos();
  setupVideos();
  setupLive();
  showTab(new URL(location.href).searchParams.get('tab') || 'photos');
  document.body.dataset.ready = 'true';
}

main();

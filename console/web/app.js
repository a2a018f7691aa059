// cityloop web console: login, live case queue, city map, case view and
// KPI dashboard over the engine's HTTP API (see CONTRACT.md "HTTP API").
// Plain ES modules, no framework and no build step; no network but the API.
import { t, getLang, setLang, applyI18n } from './i18n.js';
import { Api, ApiError, EventStream } from './api.js';
import {
  h, clear, isOpen, slaState, urgencyCompare, fmtTime, fmtClockNow, fmtDuration, toMs, setUtcOffset, setCityNames,
  categoryName, districtName, departmentName, priorityName, statusName, eventName,
} from './util.js';
import { CityMap } from './map.js';
import { CaseView } from './caseview.js';
import { KpiDashboard } from './kpi.js';

const TOKEN_KEY = 'cityloop.token';
const UNITS_EVERY_MS = 5000;
const CASES_EVERY_MS = 60000; // full list as a safety net; the stream does the rest
const KPI_EVERY_MS = 30000;
const FEED_MAX = 30;
const REFETCH_PARALLEL = 4;
const COLUMNS = ['light', 'countdown', 'priority', 'category', 'district', 'department', 'status', 'id', 'opened'];

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

let s = null; // the session's state; null when logged out

// ---- login / logout -----------------------------------------------------------

function showLogin(error) {
  document.body.dataset.view = 'login';
  $('app').hidden = true;
  $('login').hidden = false;
  const err = $('login-error');
  err.hidden = !error;
  err.textContent = error || '';
  $('login-token').focus();
}

async function login(token) {
  const api = new Api(token, () => {});
  let whoami;
  try {
    whoami = await api.get('/api/v1/whoami');
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(e.status === 401 || e.status === 403 ? t('login.bad_token') : `${t('login.failed')} (${e.message})`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  api.onUnauthorized = () => logout(t('login.bad_token'));
  await start(api, whoami);
}

function logout(message) {
  if (s) {
    s.stream.stop();
    for (const id of s.timers) clearInterval(id);
    if (s.caseView) s.caseView.dispose();
    s = null;
  }
  sessionStorage.removeItem(TOKEN_KEY);
  clear($('queue-body'));
  clear($('map'));
  clear($('feed'));
  clear($('view-kpi'));
  const cv = $('case-view');
  clear(cv);
  cv.hidden = true;
  $('login-token').value = '';
  if (location.hash) history.replaceState(null, '', location.pathname);
  showLogin(message);
}

// ---- the session ----------------------------------------------------------------

async function start(api, whoami) {
  let city;
  try {
    city = await api.get('/api/v1/city');
  } catch (e) {
    showLogin(`${t('login.failed')} (${e.message})`);
    return;
  }
  setUtcOffset(city.utc_offset_minutes);
  setCityNames(city);
  s = {
    api, whoami, city,
    cases: new Map(), // open cases by id
    via: new Map(), // how each case first came: 'list' or 'stream'
    units: [],
    timers: [],
    pending: new Set(), // case ids to refetch
    inflight: 0,
    streamState: 'connecting',
    events: 0,
    renderQueued: false,
  };
  document.body.dataset.view = 'app';
  document.body.dataset.role = whoami.role || '';
  $('login').hidden = true;
  $('app').hidden = false;
  renderWhoami();

  s.map = new CityMap($('map'), city, { onOpenCase: openCase });
  s.caseView = new CaseView($('case-view'), {
    api, whoami, city,
    onClose: () => { if (location.hash.startsWith('#/case/')) history.replaceState(null, '', '#/ops'); scheduleRender(); },
    onCaseUpdated: (k) => applyCase(k, 'stream'),
    streamLive: () => s && s.streamState === 'live',
  });
  s.kpi = new KpiDashboard($('view-kpi'), { api });

  s.stream = new EventStream(api, '/api/v1/stream', {
    onEvent,
    onState: setStreamState,
    onConnected: (resumed) => {
      document.body.dataset.streamConnects = String((Number(document.body.dataset.streamConnects) || 0) + 1);
      // After a drop, events may be past the server's retention: reload the list.
      if (resumed) loadCases();
    },
  });

  await Promise.all([loadCases(), loadUnits()]);
  if (!s) return;
  s.stream.start();
  s.timers.push(setInterval(tick, 1000));
  s.timers.push(setInterval(loadUnits, UNITS_EVERY_MS));
  s.timers.push(setInterval(loadCases, CASES_EVERY_MS));
  s.timers.push(setInterval(() => { if (document.body.dataset.view === 'kpi') s.kpi.load(); }, KPI_EVERY_MS));
  route();
  tick();
}

function renderWhoami() {
  const w = s.whoami;
  $('whoami-name').textContent = w.name || '';
  $('whoami-role').textContent = t(`role.${w.role}`);
  $('whoami-role').dataset.role = w.role || '';
  const ds = Array.isArray(w.districts) && w.districts.length ? w.districts.map(districtName).join('、') : t('districts.all');
  $('whoami-districts').textContent = ds;
  $('city-name').textContent = s.city.name || '';
}

function setStreamState(state) {
  if (!s) return;
  s.streamState = state;
  const el = $('stream-status');
  el.dataset.state = state;
  el.querySelector('.stream-text').textContent = t(`stream.${state}`);
}

// ---- data -----------------------------------------------------------------------

async function loadCases() {
  if (!s) return;
  const session = s;
  const started = Date.now();
  const fresh = [];
  let cursor = '';
  try {
    for (let page = 0; page < 10; page++) {
      const q = `/api/v1/cases?status=open&limit=500${cursor ? `&cursor=${enc(cursor)}` : ''}`;
      const r = await session.api.get(q);
      fresh.push(...(r.cases || []));
      cursor = r.next_cursor || '';
      if (!cursor) break;
    }
  } catch (e) {
    if (e.status !== 401) toast(`${t('error.http')}: ${e.message}`, 'error');
    return;
  }
  if (s !== session) return;
  const ids = new Set();
  for (const k of fresh) {
    ids.add(k.id);
    applyCase(k, 'list');
  }
  // Cases gone from the open list were closed (or merged) meanwhile, unless
  // a newer version came by the stream since.
  for (const [id, k] of s.cases) {
    if (!ids.has(id) && !s.pending.has(id) && (k.__seenAt || 0) < started) s.cases.delete(id);
  }
  scheduleRender();
}

async function loadUnits() {
  if (!s) return;
  const session = s;
  try {
    const units = await session.api.get('/api/v1/units');
    if (s !== session) return;
    s.units = Array.isArray(units) ? units : units.units || [];
    s.map.updateUnits(s.units);
  } catch { /* keep the last positions */ }
}

function version(k) {
  return Number(k.event_seq) || Number(k.updated) || 0;
}

// A case as fetched (list, refetch or action reply): into the queue if open.
function applyCase(k, via) {
  if (!s || !k || !k.id) return;
  const old = s.cases.get(k.id);
  if (old && version(old) > version(k)) return; // an older copy than the one we have
  if (isOpen(k)) {
    if (!s.via.has(k.id)) s.via.set(k.id, via);
    k.__seenAt = Date.now();
    s.cases.set(k.id, k);
  } else {
    s.cases.delete(k.id);
  }
  scheduleRender();
}

// ---- live stream --------------------------------------------------------------

function onEvent({ id, type, data }) {
  if (!s) return;
  let ev = null;
  try { ev = JSON.parse(data); } catch { ev = null; }
  const etype = type && type !== 'message' ? type : (ev && ev.type) || 'message';
  const d = (ev && ev.data) || {};
  const caseId = (ev && ev.subject) || d.case_id || d.case || d.id || '';
  s.events += 1;
  document.body.dataset.events = String(s.events);
  document.body.dataset.lastEventId = id || '';
  addFeed(etype, caseId, toMs(ev && ev.time) || Date.now());
  if (etype === 'city.command.rejected') {
    toast(`${eventName(etype)} ${caseId}: ${d.reason || d.message || ''}`, 'error');
    if (s.caseView.id === caseId) s.caseView.rejected(d);
  } else if (etype === 'city.case.sla_breached') {
    toast(`${eventName(etype)} · ${caseId}`, 'error');
  }
  if (caseId) refetch(caseId);
}

function refetch(id) {
  s.pending.add(id);
  pump();
}

function pump() {
  if (!s) return;
  const session = s;
  while (session.inflight < REFETCH_PARALLEL && session.pending.size) {
    const id = session.pending.values().next().value;
    session.pending.delete(id);
    session.inflight += 1;
    session.api.get(`/api/v1/cases/${enc(id)}`).then((detail) => {
      if (s !== session) return;
      if (detail && detail.case) applyCase(detail.case, 'stream');
      if (s.caseView.id === id) s.caseView.setDetail(detail);
    }).catch((e) => {
      if (s !== session) return;
      if (e instanceof ApiError && (e.status === 404 || e.status === 403)) {
        s.cases.delete(id);
        scheduleRender();
      }
    }).finally(() => {
      session.inflight -= 1;
      pump();
    });
  }
}

function addFeed(type, caseId, at) {
  const feed = $('feed');
  const li = h('li', { testid: 'feed-item', dataset: { type, case: caseId } },
    h('time', {}, fmtTime(at).slice(6)),
    h('span', { class: `feed-type t-${type.replace(/\./g, '-')}` }, eventName(type)),
    caseId ? h('button', { type: 'button', class: 'linklike', onclick: () => openCase(caseId) }, caseId) : null);
  feed.prepend(li);
  while (feed.children.length > FEED_MAX) feed.lastChild.remove();
}

// ---- queue ----------------------------------------------------------------------

function scheduleRender() {
  if (!s || s.renderQueued) return;
  s.renderQueued = true;
  queueMicrotask(() => {
    if (!s) return;
    s.renderQueued = false;
    render(Date.now());
  });
}

function tick() {
  if (!s) return;
  const now = Date.now();
  $('clock').textContent = fmtClockNow(now);
  render(now);
  s.caseView.tick(now);
}

function sortedCases(now) {
  return [...s.cases.values()].sort((a, b) => urgencyCompare(a, b, now));
}

function matches(k, q) {
  if (!q) return true;
  const hay = [k.id, k.category, categoryName(k.category), k.district, districtName(k.district), k.street,
    k.department, departmentName(k.department), k.grid, statusName(k.status), priorityName(k.priority)].join(' ').toLowerCase();
  return q.split(/\s+/).every((w) => hay.includes(w));
}

function render(now) {
  const all = sortedCases(now);
  const q = $('queue-filter').value.trim().toLowerCase();
  const shown = all.filter((k) => matches(k, q));
  let red = 0, yellow = 0, urgent = 0;
  for (const k of all) {
    const l = slaState(k, now).light;
    if (l === 'red') red++;
    else if (l === 'yellow') yellow++;
    if (k.priority === 'urgent') urgent++;
  }
  $('stat-open').textContent = String(all.length);
  $('stat-red').textContent = String(red);
  $('stat-yellow').textContent = String(yellow);
  $('stat-urgent').textContent = String(urgent);
  renderQueue(shown, now);
  $('queue-empty').hidden = shown.length > 0;
  s.map.update(all, s.caseView.id, now);
}

function renderQueue(cases, now) {
  const body = $('queue-body');
  const rows = new Map([...body.children].map((tr) => [tr.dataset.id, tr]));
  const selected = s.caseView.id;
  let i = 0;
  for (const k of cases) {
    let tr = rows.get(k.id);
    if (!tr) {
      tr = h('tr', { testid: `queue-row-${k.id}`, class: 'queue-row', dataset: { id: k.id } });
      tr.addEventListener('click', (e) => { if (!e.target.closest('button')) openCase(k.id); });
      for (const col of COLUMNS) tr.append(h('td', { class: `col-${col}` }));
      tr.children[7].append(h('button', { type: 'button', class: 'linklike case-link', testid: `queue-open-${k.id}`, onclick: () => openCase(k.id) }));
      // A case that arrives live flashes once.
      if (s.via.get(k.id) === 'stream') {
        tr.classList.add('new');
        const done = () => tr.classList.remove('new');
        tr.addEventListener('animationend', done, { once: true });
        tr.addEventListener('animationcancel', done, { once: true }); // hidden meanwhile
      }
    }
    rows.delete(k.id);
    const sla = slaState(k, now);
    tr.dataset.light = sla.light;
    tr.dataset.status = k.status || '';
    tr.dataset.priority = k.priority || '';
    tr.dataset.stage = sla.stage || '';
    tr.dataset.via = s.via.get(k.id) || 'list';
    tr.classList.toggle('selected', k.id === selected);
    if (k.id === selected) tr.setAttribute('aria-current', 'true'); else tr.removeAttribute('aria-current');
    const cells = tr.children;
    setLight(cells[0], sla.light);
    const over = sla.remaining !== null && sla.remaining < 0;
    cells[1].className = `col-countdown countdown ${over ? 'over' : ''}`;
    const time = !sla.stage ? '—' : sla.paused ? t('paused') : sla.remaining === null ? '' : fmtDuration(Math.abs(sla.remaining));
    const label = !sla.stage ? '' : over ? t('overdue') : t(`stage.${sla.stage}`);
    if (cells[1].dataset.text !== time + label) {
      cells[1].dataset.text = time + label;
      clear(cells[1]).append(h('b', {}, time), ' ', h('small', {}, label));
    }
    setText(cells[2], priorityName(k.priority));
    cells[2].className = `col-priority prio prio-${k.priority}`;
    setText(cells[3], categoryName(k.category));
    setText(cells[4], districtName(k.district));
    setText(cells[5], departmentName(k.department));
    setText(cells[6], statusName(k.status));
    cells[6].className = 'col-status status';
    setText(cells[7].firstChild, k.id);
    setText(cells[8], fmtTime(k.first_event));
    // Keep DOM order = urgency order; move only what is out of place.
    if (body.children[i] !== tr) body.insertBefore(tr, body.children[i] || null);
    i++;
  }
  for (const tr of rows.values()) tr.remove();
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function setLight(td, light) {
  let dot = td.firstChild;
  if (!dot) {
    dot = h('span', { class: 'light' });
    td.append(dot, h('span', { class: 'sr-only' }));
  }
  dot.dataset.light = light;
  setText(td.lastChild, t(`light.${light}`));
}

// ---- views and routing -----------------------------------------------------------

function openCase(id) {
  if (!s) return;
  if (location.hash !== `#/case/${enc(id)}`) location.hash = `#/case/${enc(id)}`;
  else route();
}

function route() {
  if (!s) return;
  const hash = location.hash || '#/ops';
  const kpi = hash.startsWith('#/kpi');
  document.body.dataset.view = kpi ? 'kpi' : 'ops';
  $('view-ops').hidden = kpi;
  $('view-kpi').hidden = !kpi;
  $('nav-ops').setAttribute('aria-current', kpi ? 'false' : 'page');
  $('nav-kpi').setAttribute('aria-current', kpi ? 'page' : 'false');
  if (kpi) s.kpi.load();
  const m = /^#\/case\/(.+)$/.exec(hash);
  if (m) {
    s.caseView.open(decodeURIComponent(m[1]));
    scheduleRender();
  } else if (!kpi && s.caseView.isOpen()) {
    s.caseView.close();
  }
}

function relabel() {
  applyI18n();
  document.title = `${t('app.title')} · cityloop`;
  if (!s) return;
  renderWhoami();
  setStreamState(s.streamState);
  s.map.relabel();
  s.caseView.relabel();
  s.kpi.build();
  for (const li of $('feed').children) {
    const span = li.querySelector('.feed-type');
    if (span) span.textContent = eventName(li.dataset.type);
  }
  render(Date.now());
}

// ---- toasts ----------------------------------------------------------------------

function toast(text, kind = 'info') {
  const box = $('toasts');
  const el = h('div', { class: `toast ${kind}`, testid: 'toast' }, text);
  box.append(el);
  while (box.children.length > 4) box.firstChild.remove();
  setTimeout(() => el.remove(), 6000);
}

// ---- boot -------------------------------------------------------------------------

function boot() {
  setLang(getLang());
  relabel();
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('login-token').value.trim();
    if (token) login(token);
  });
  for (const b of document.querySelectorAll('.lang-toggle')) {
    b.addEventListener('click', () => { setLang(getLang() === 'zh' ? 'en' : 'zh'); relabel(); });
  }
  $('logout').addEventListener('click', () => logout());
  $('fullscreen').addEventListener('click', () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else document.documentElement.requestFullscreen().catch(() => {});
  });
  $('queue-filter').addEventListener('input', () => scheduleRender());
  window.addEventListener('hashchange', route);
  document.addEventListener('keydown', (e) => {
    const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement && document.activeElement.tagName);
    if (e.key === 'Escape' && s && s.caseView.isOpen()) s.caseView.close();
    else if (e.key === '/' && !typing && s) { e.preventDefault(); $('queue-filter').focus(); }
  });
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) login(token);
  else showLogin();
}

boot();

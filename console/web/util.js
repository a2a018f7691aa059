// Shared helpers: DOM building, city-local time formatting, the SLA logic
// of a case (which clock runs, its live light, the queue's urgency order)
// and display names from /api/v1/city in the current language.
import { getLang, t } from './i18n.js';

// h('div', {class: 'x', dataset: {testid: 'y'}, onclick: fn}, child, 'text', [more])
export function h(tag, attrs, ...children) {
  const svg = tag.startsWith('svg:');
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag.slice(4)) : document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else if (k === 'testid') el.setAttribute('data-testid', v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// ---- time -------------------------------------------------------------------

let utcOffsetMin = 480; // Changsha; replaced by /api/v1/city's utc_offset_minutes
export function setUtcOffset(min) {
  if (Number.isFinite(min)) utcOffsetMin = min;
}

// City-local parts of an epoch-ms time.
function localIso(ms) {
  return new Date(ms + utcOffsetMin * 60000).toISOString(); // "2026-11-28T14:03:09.000Z" in city time
}

// "11-28 14:03:09" (city time); "" for 0 / missing.
export function fmtTime(ms) {
  if (!ms) return '';
  const s = localIso(ms);
  return `${s.slice(5, 10)} ${s.slice(11, 19)}`;
}

export function fmtClockNow(ms) {
  return localIso(ms).slice(11, 19);
}

// City-local date "YYYY-MM-DD" of ms, shifted by `days`.
export function localDate(ms, days = 0) {
  return localIso(ms + days * 86400000).slice(0, 10);
}

// Parses an RFC 3339 string or epoch ms into epoch ms.
export function toMs(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v) {
    const n = Date.parse(v);
    return Number.isNaN(n) ? 0 : n;
  }
  return 0;
}

// 3725000 -> "01:02:05"; over a day "1d 02:03".
export function fmtDuration(ms) {
  const neg = ms < 0;
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hh = String(Math.floor(s / 3600)).padStart(2, '0');
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  const body = d > 0 ? `${d}d ${hh}:${mm}` : `${hh}:${mm}:${ss}`;
  return neg ? `-${body}` : body;
}

// KPI durations: "42s", "12.5 min", "3.2 h".
export function fmtSpan(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 60000) return `${Math.round(ms / 1000)}s`;
  if (ms < 3600000) return `${(ms / 60000).toFixed(1)} min`;
  return `${(ms / 3600000).toFixed(1)} h`;
}

export function fmtRate(r) {
  return r === null || r === undefined || Number.isNaN(r) ? '—' : `${(r * 100).toFixed(1)}%`;
}

// ---- SLA ----------------------------------------------------------------------

export const PRIORITY_RANK = { urgent: 0, high: 1, normal: 2, low: 3 };
const DONE = new Set(['closed', 'invalid', 'merged']);
const ACTIVE_TASK = new Set(['dispatched', 'acknowledged', 'enroute', 'onscene', 'handled']);

export function isOpen(c) {
  return !DONE.has(c.status);
}

// The lead task: the newest lead task still active, else the newest lead one.
export function leadTask(c) {
  const tasks = Array.isArray(c.tasks) ? c.tasks : [];
  for (let i = tasks.length - 1; i >= 0; i--) if (tasks[i].lead && ACTIVE_TASK.has(tasks[i].status)) return tasks[i];
  for (let i = tasks.length - 1; i >= 0; i--) if (tasks[i].lead) return tasks[i];
  return null;
}

function running(k) {
  return k && typeof k === 'object' && k.started && !k.stopped;
}

// The clock that runs now: the lead task's acknowledge -> arrive -> handle
// clock, then the case's verify and close clocks; the first one started and
// not stopped. {stage, clock} or null.
export function runningClock(c) {
  const task = leadTask(c);
  const order = [];
  if (task) order.push(['acknowledge', task.acknowledge_clock], ['arrive', task.arrive_clock], ['handle', task.handle_clock]);
  order.push(['verify', c.verify_clock], ['close', c.close_clock]);
  for (const [stage, clock] of order) if (running(clock)) return { stage, clock };
  return null;
}

const LIGHT_RANK = { green: 0, yellow: 1, red: 2 };

// The light of a clock now: the engine's last announced light, raised by
// the clock's own warn/deadline times as they pass between two events. A
// suspended case's clock is paused: its announced light stands.
export function clockLight(clock, now, paused) {
  let light = LIGHT_RANK[clock.light] !== undefined ? clock.light : 'green';
  if (!paused) {
    if (clock.deadline && now >= clock.deadline) light = 'red';
    else if (clock.warn && now >= clock.warn && light === 'green') light = 'yellow';
  }
  return light;
}

// {stage, clock, light, remaining} of a case now; light 'none' when no clock runs.
export function slaState(c, now) {
  const rc = runningClock(c);
  if (!rc) return { stage: null, clock: null, light: 'none', remaining: null, paused: false };
  const paused = c.status === 'suspended';
  return {
    stage: rc.stage,
    clock: rc.clock,
    light: clockLight(rc.clock, now, paused),
    remaining: rc.clock.deadline ? rc.clock.deadline - now : null,
    paused,
  };
}

// Queue order: red light first, then priority, then the nearest deadline.
export function urgencyCompare(a, b, now) {
  const sa = slaState(a, now);
  const sb = slaState(b, now);
  const ra = sa.light === 'red' ? 0 : 1;
  const rb = sb.light === 'red' ? 0 : 1;
  if (ra !== rb) return ra - rb;
  const pa = PRIORITY_RANK[a.priority] ?? 9;
  const pb = PRIORITY_RANK[b.priority] ?? 9;
  if (pa !== pb) return pa - pb;
  const da = sa.clock && sa.clock.deadline ? sa.clock.deadline : Infinity;
  const db = sb.clock && sb.clock.deadline ? sb.clock.deadline : Infinity;
  if (da !== db) return da - db;
  return String(a.id).localeCompare(String(b.id));
}

// ---- names from /api/v1/city ---------------------------------------------------

const names = { district: new Map(), department: new Map(), category: new Map() };
export function setCityNames(city) {
  for (const m of Object.values(names)) m.clear();
  for (const d of city.districts || []) names.district.set(d.id, d.name);
  for (const d of city.departments || []) names.department.set(d.id, d.name);
  for (const c of city.categories || []) names.category.set(c.id, c.name);
}

function humanize(id) {
  const s = String(id || '').replace(/[_-]+/g, ' ').trim();
  return s ? s[0].toUpperCase() + s.slice(1) : '';
}

// In Chinese the config's name; in English the id, made readable.
function nameOf(kind, id) {
  if (!id) return '—';
  if (getLang() === 'en') return humanize(id);
  return names[kind].get(id) || id;
}

export const districtName = (id) => nameOf('district', id);
export const departmentName = (id) => nameOf('department', id);
export const categoryName = (id) => nameOf('category', id);
export const statusName = (s) => (s ? t(`status.${s}`) : '—');
export const priorityName = (p) => (p ? t(`priority.${p}`) : '—');
export const eventName = (type) => t(`event.${type}`);
export const actionName = (a) => t(`action.${a}`);

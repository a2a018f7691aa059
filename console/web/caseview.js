// The case view: one case's summary, live SLA countdown, tasks, timeline,
// signals, camera snapshots (fetched with the token, shown as blob URLs), the
// recommended units, and the actions the user's role allows.
import { t } from './i18n.js';
import {
  h, clear, slaState, fmtTime, fmtDuration, toMs, categoryName, districtName, departmentName, priorityName,
  statusName, eventName, actionName,
} from './util.js';

const OPERATOR_ACTIONS = [
  'acknowledge', 'enroute', 'arrive', 'handled', 'verify_pass', 'verify_fail', 'close',
  'return', 'reassign', 'extend', 'assist', 'defer',
];
const SUPERVISOR_ACTIONS = ['suspend', 'resume', 'invalidate', 'reopen', 'merge'];
// Parameters an action needs besides its note.
const NEEDS = { reassign: 'department', assist: 'department', extend: 'duration', merge: 'into' };

export function actionsFor(role) {
  if (role === 'operator') return OPERATOR_ACTIONS;
  if (role === 'supervisor' || role === 'admin') return [...OPERATOR_ACTIONS, ...SUPERVISOR_ACTIONS];
  return [];
}

const enc = encodeURIComponent;

export class CaseView {
  constructor(root, { api, whoami, city, onClose, onCaseUpdated, streamLive }) {
    this.root = root;
    this.api = api;
    this.whoami = whoami;
    this.city = city;
    this.onClose = onClose;
    this.onCaseUpdated = onCaseUpdated;
    this.streamLive = streamLive || (() => true);
    this.id = null;
    this.detail = null;
    this.blobs = new Map(); // snapshot id -> object URL
    this.loadSeq = 0;
    root.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') { e.stopPropagation(); this.close(); }
    });
  }

  isOpen() { return this.id !== null; }

  async open(id) {
    const from = document.activeElement;
    if (from && from !== document.body && !this.root.contains(from)) this.returnFocus = from;
    if (this.id !== id) {
      this.dispose();
      this.id = id;
      this.detail = null;
      this.build();
    }
    this.root.hidden = false;
    this.root.classList.add('open');
    this.heading.focus();
    await this.reload();
  }

  close() {
    if (this.id === null) return;
    this.dispose();
    this.id = null;
    this.root.hidden = true;
    this.root.classList.remove('open');
    clear(this.root);
    this.onClose();
    // Back to where the user came from (a queue row, a map marker).
    if (this.returnFocus && this.returnFocus.isConnected) this.returnFocus.focus();
    this.returnFocus = null;
  }

  dispose() {
    this.pending = null;
    for (const url of this.blobs.values()) URL.revokeObjectURL(url);
    this.blobs.clear();
    clearTimeout(this.fallback);
  }

  async reload() {
    const id = this.id;
    if (id === null) return;
    const seq = ++this.loadSeq;
    try {
      const detail = await this.api.get(`/api/v1/cases/${enc(id)}`);
      if (seq !== this.loadSeq || id !== this.id) return;
      this.setDetail(detail);
      if (detail && detail.case) this.onCaseUpdated(detail.case);
    } catch (e) {
      if (seq !== this.loadSeq || id !== this.id) return;
      if (e.status === 404 || e.status === 403) this.showMissing();
      else this.message(`${t('error.http')}: ${e.message}`, true);
    }
  }

  // detail: GET /api/v1/cases/{id}; refetched on every event of the case.
  setDetail(detail) {
    if (!detail || !detail.case || detail.case.id !== this.id) return;
    this.detail = detail;
    this.countdown.hidden = false;
    this.cols.hidden = false;
    this.missing.hidden = true;
    this.render();
    // A pending command whose change has arrived: say so.
    if (this.pending && (detail.timeline || []).length > this.pending.seen && this.result && this.result.dataset.state === 'pending') {
      this.message(`${actionName(this.pending.action)}: ${t('case.applied')}`, false);
      this.result.dataset.state = 'applied';
      this.pending = null;
    }
  }

  build() {
    const r = clear(this.root);
    const titleId = 'case-view-title';
    r.setAttribute('aria-labelledby', titleId);
    this.heading = h('h2', { id: titleId, tabindex: '-1', testid: 'case-id', text: this.id });
    const closeBtn = h('button', { type: 'button', class: 'icon-btn', testid: 'case-close', 'aria-label': t('case.close'), onclick: () => this.close() }, '×');
    this.summary = h('dl', { class: 'case-summary', testid: 'case-summary' }, h('dt', {}, t('case.loading')));
    this.countdown = h('div', { class: 'case-countdown', testid: 'case-countdown' });
    this.actionsBox = h('section', { class: 'case-actions', testid: 'case-actions', 'aria-label': t('case.actions') });
    this.tasks = h('section', { class: 'case-tasks', testid: 'case-tasks' });
    this.recommended = h('section', { class: 'case-recommended', testid: 'case-recommended' });
    this.timeline = h('ol', { class: 'timeline', testid: 'timeline' });
    this.signals = h('div', { class: 'signals', testid: 'signals' });
    this.snapshots = h('div', { class: 'snapshots', testid: 'snapshots' });
    r.append(
      h('header', { class: 'case-head' }, h('div', {}, h('div', { class: 'eyebrow' }, t('case.title')), this.heading), closeBtn),
      this.countdown,
      this.missing = h('p', { class: 'muted', testid: 'case-missing', hidden: true }, t('case.not_found')),
      this.cols = h('div', { class: 'case-cols' },
        h('div', { class: 'case-col' }, this.summary, this.actionsBox, this.tasks, this.recommended),
        h('div', { class: 'case-col' },
          h('section', {}, h('h3', {}, t('case.timeline')), this.timeline),
          h('section', {}, h('h3', {}, t('case.snapshots')), this.snapshots),
          h('section', {}, h('h3', {}, t('case.signals')), this.signals))),
    );
    this.buildActions();
  }

  buildActions() {
    const box = clear(this.actionsBox);
    box.append(h('h3', {}, t('case.actions')));
    const actions = actionsFor(this.whoami.role);
    if (!actions.length) {
      box.append(h('p', { class: 'muted', testid: 'no-actions' }, t('case.no_actions')));
      return;
    }
    this.note = h('input', { type: 'text', id: 'action-note', testid: 'action-note', autocomplete: 'off', maxlength: '500' });
    const deptSel = h('select', { id: 'action-department', testid: 'action-department' },
      h('option', { value: '' }, t('case.param.choose')),
      (this.city.departments || []).map((d) => h('option', { value: d.id }, departmentName(d.id))));
    this.params = {
      department: deptSel,
      duration: h('input', { type: 'text', id: 'action-duration', testid: 'action-duration', placeholder: '2h', size: '6', autocomplete: 'off' }),
      into: h('input', { type: 'text', id: 'action-into', testid: 'action-into', placeholder: 'CL-…', autocomplete: 'off' }),
    };
    const fields = h('div', { class: 'action-fields' },
      h('label', { for: 'action-note' }, t('case.note')), this.note,
      h('label', { for: 'action-department' }, t('case.param.department')), this.params.department,
      h('label', { for: 'action-duration' }, t('case.param.duration')), this.params.duration,
    );
    if (actions.includes('merge')) fields.append(h('label', { for: 'action-into' }, t('case.param.into')), this.params.into);
    this.buttons = actions.map((a) => h('button', {
      type: 'button', class: `action-btn action-${a}`, testid: `action-${a}`, dataset: { action: a },
      onclick: () => this.act(a),
    }, actionName(a)));
    this.result = h('div', { class: 'action-result', testid: 'action-result', role: 'status', 'aria-live': 'polite' });
    box.append(fields, h('div', { class: 'action-buttons' }, this.buttons), this.result);
  }

  message(text, error) {
    if (!this.result) return;
    this.result.textContent = text;
    this.result.classList.toggle('error', !!error);
    this.result.dataset.state = error ? 'error' : 'info';
  }

  async act(action) {
    const body = { action };
    const note = this.note.value.trim();
    if (note) body.note = note;
    const need = NEEDS[action];
    if (need) {
      const v = this.params[need].value.trim();
      if (!v) {
        this.message(t(`case.need.${need}`), true);
        this.params[need].focus();
        return;
      }
      body[need] = v;
    }
    for (const b of this.buttons) b.disabled = true;
    const id = this.id;
    try {
      const r = await this.api.post(`/api/v1/cases/${enc(id)}/actions`, body);
      if (id !== this.id) return;
      this.note.value = '';
      if (r.body && r.body.case) this.onCaseUpdated(r.body.case);
      if (r.status === 202 || (r.body && r.body.status === 'pending')) {
        this.message(`${actionName(action)}: ${t('case.pending')}`, false);
        this.result.dataset.state = 'pending';
        this.pending = { action, seen: this.detail ? (this.detail.timeline || []).length : 0 };
        // The stream brings the change; without it, look again shortly.
        if (!this.streamLive()) this.fallback = setTimeout(() => this.reload(), 2000);
      } else {
        this.message(`${actionName(action)}: ${t('case.applied')}`, false);
        this.result.dataset.state = 'applied';
        this.reload();
      }
    } catch (e) {
      if (id !== this.id) return;
      const why = e.status === 403 ? t('case.forbidden') : e.status === 409 ? t('case.rejected') : t('error.http');
      this.message(`${actionName(action)}: ${why}${e.code ? ` [${e.code}]` : ''}${e.message ? ` ${e.message}` : ''}`, true);
      this.result.dataset.state = 'error';
    } finally {
      for (const b of this.buttons) b.disabled = false;
    }
  }

  // A command.rejected event of this case: show its reason here too.
  rejected(data) {
    const reason = (data && (data.reason || data.message || data.error)) || '';
    const action = data && data.action ? actionName(data.action) : '';
    this.message(`${action ? `${action}: ` : ''}${t('case.rejected')} ${reason}`.trim(), true);
  }

  showMissing() {
    this.detail = null;
    this.countdown.hidden = true;
    this.cols.hidden = true;
    this.missing.hidden = false;
  }

  relabel() {
    if (this.id === null) return;
    const note = this.note ? this.note.value : '';
    this.build();
    if (this.note) this.note.value = note;
    if (this.detail) this.render();
  }

  render() {
    const { case: k, timeline = [], snapshots = [], recommended_units: rec = [] } = this.detail;
    const now = Date.now();
    const sla = slaState(k, now);
    const row = (label, value, testid) => [h('dt', {}, label), h('dd', { testid }, value)];
    const place = [districtName(k.district), k.street, k.community].filter(Boolean).join(' / ');
    clear(this.summary).append(
      ...row(t('case.category'), `${categoryName(k.category)}${k.category_code ? ` (${k.category_code})` : ''}`, 'case-category'),
      ...row(t('case.priority'), h('span', { class: `prio prio-${k.priority}` }, priorityName(k.priority)), 'case-priority'),
      ...row(t('case.status'), h('span', { class: 'status', testid: 'case-status', dataset: { status: k.status } }, statusName(k.status))),
      ...row(t('case.light'), h('span', { class: 'light-badge', testid: 'case-light', dataset: { light: sla.light, stage: sla.stage || '' } },
        h('span', { class: 'light', dataset: { light: sla.light }, 'aria-hidden': 'true' }), t(`light.${sla.light}`))),
      ...row(t('case.department'), departmentName(k.department), 'case-department'),
      ...row(t('case.place'), place || '—', 'case-place'),
      ...row(t('case.grid'), k.grid || '—', 'case-grid'),
      ...row(t('case.first_event'), fmtTime(k.first_event) || '—'),
      ...row(t('case.registered'), fmtTime(k.registered) || '—'),
      ...row(t('case.dispatched'), fmtTime(k.dispatched) || '—'),
      ...(k.closed ? row(t('case.closed'), fmtTime(k.closed)) : []),
    );
    this.tick(now);
    this.renderTasks(k);
    this.renderRecommended(k, rec);
    this.renderTimeline(timeline);
    this.renderSignals(k.signals || []);
    this.renderSnapshots(k, snapshots);
  }

  tick(now) {
    if (!this.detail) return;
    const k = this.detail.case;
    const sla = slaState(k, now);
    const el = clear(this.countdown);
    el.dataset.light = sla.light;
    el.dataset.stage = sla.stage || '';
    el.dataset.clock = sla.stage || '';
    if (!sla.stage) {
      el.append(h('span', { class: 'muted' }, t('no_clock')));
      return;
    }
    const over = sla.remaining !== null && sla.remaining < 0;
    el.append(
      h('span', { class: 'light', dataset: { light: sla.light }, 'aria-hidden': 'true' }),
      h('span', { class: 'stage' }, `${t('case.clock')}: ${t(`stage.${sla.stage}`)}`),
      h('span', { class: `count ${over ? 'over' : ''}` },
        sla.paused ? t('paused') : sla.remaining === null ? '—'
          : `${over ? t('overdue') : t('remaining')} ${fmtDuration(Math.abs(sla.remaining))}`),
      sla.clock.deadline ? h('span', { class: 'muted' }, `${t('case.deadline')} ${fmtTime(sla.clock.deadline)}`) : null,
    );
  }

  renderTasks(k) {
    const el = clear(this.tasks);
    el.append(h('h3', {}, t('case.tasks')));
    const tasks = k.tasks || [];
    if (!tasks.length) { el.append(h('p', { class: 'muted' }, t('case.none'))); return; }
    el.append(h('ul', { class: 'task-list' }, tasks.map((task) => h('li', { testid: 'case-task', dataset: { status: task.status, lead: String(!!task.lead) } },
      h('strong', {}, departmentName(task.department)), ' ',
      h('span', { class: 'tag' }, task.lead ? t('case.task.lead') : t('case.task.assist')), ' ',
      statusName(task.status),
      task.unit ? ` · ${t('case.task.unit')} ${task.unit}` : '',
      task.acknowledged ? ` · ${t('stage.acknowledge')} ${fmtTime(task.acknowledged)}` : '',
      task.arrived ? ` · ${t('stage.arrive')} ${fmtTime(task.arrived)}` : '',
      task.handled ? ` · ${t('stage.handle')} ${fmtTime(task.handled)}` : ''))));
  }

  renderRecommended(k, rec) {
    const el = clear(this.recommended);
    el.append(h('h3', {}, t('case.recommended')));
    const list = Array.isArray(rec) && rec.length ? rec : k.recommended_unit ? [k.recommended_unit] : [];
    if (!list.length) { el.append(h('p', { class: 'muted' }, t('case.none'))); return; }
    el.append(h('ul', { class: 'rec-list' }, list.map((u, i) => {
      if (typeof u === 'string') return h('li', { testid: 'recommended-unit' }, i === 0 ? h('strong', {}, u) : u);
      const id = u.id || u.unit || u.unit_id || '?';
      const bits = [];
      if (u.department) bits.push(departmentName(u.department));
      if (Number.isFinite(u.distance_m)) bits.push(`${(u.distance_m / 1000).toFixed(2)} km`);
      const eta = u.eta_s ?? (Number.isFinite(u.eta_ms) ? u.eta_ms / 1000 : undefined);
      if (Number.isFinite(eta)) bits.push(`ETA ${Math.round(eta / 60)} min`);
      if (u.status) bits.push(t(`unit.${u.status}`));
      return h('li', { testid: 'recommended-unit' }, i === 0 ? h('strong', {}, id) : id, bits.length ? ` · ${bits.join(' · ')}` : '');
    })));
  }

  renderTimeline(timeline) {
    const el = clear(this.timeline);
    for (const e of timeline) {
      const at = toMs(e.at_ms || e.at);
      const detail = e.detail && typeof e.detail === 'object' ? summarize(e.detail) : '';
      el.append(h('li', { testid: 'timeline-item', dataset: { action: e.action || '', seq: String(e.seq ?? '') } },
        h('time', { datetime: typeof e.at === 'string' ? e.at : new Date(at).toISOString() }, fmtTime(at)),
        h('span', { class: 'tl-action' }, eventName(e.action)),
        e.status ? h('span', { class: 'tl-status' }, statusName(e.status)) : null,
        e.actor ? h('span', { class: 'tl-actor' }, `${e.actor}${e.role ? ` (${t(`role.${e.role}`)})` : ''}`) : null,
        e.reason ? h('span', { class: 'tl-reason' }, e.reason) : null,
        detail ? h('span', { class: 'tl-detail muted' }, detail) : null));
    }
    if (!timeline.length) el.append(h('li', { class: 'muted' }, t('case.none')));
  }

  renderSignals(signals) {
    const el = clear(this.signals);
    if (!signals.length) { el.append(h('p', { class: 'muted' }, t('case.no_signals'))); return; }
    const rows = signals.slice(-50).reverse().map((s) => h('tr', { testid: 'signal' },
      h('td', {}, fmtTime(s.ts)),
      h('td', {}, t(`source.${s.source}`)),
      h('td', {}, s.device_id || '—'),
      h('td', {}, s.rule || '—'),
      h('td', { class: 'num' }, fmtNum(s.value)),
      h('td', { class: 'num' }, fmtNum(s.threshold)),
      h('td', {}, s.explanation || '')));
    el.append(h('table', { class: 'signal-table' },
      h('thead', {}, h('tr', {}, ['', t('signal.source'), t('signal.device'), t('signal.rule'), t('signal.value'), t('signal.threshold'), ''].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows)));
  }

  renderSnapshots(k, ids) {
    const el = this.snapshots;
    const all = new Set(Array.isArray(ids) ? ids : []);
    for (const s of k.signals || []) {
      const a = s.attributes || {};
      if (a.snapshot_annotated) all.add(a.snapshot_annotated);
      else if (a.snapshot) all.add(a.snapshot);
    }
    if (!all.size) { clear(el).append(h('p', { class: 'muted' }, t('case.no_snapshots'))); return; }
    const have = new Set([...el.querySelectorAll('img')].map((img) => img.dataset.snapshot));
    if (!have.size) clear(el);
    for (const id of all) {
      if (have.has(id)) continue;
      const img = h('img', { alt: `${t('case.snapshots')} ${id}`, testid: 'snapshot', dataset: { snapshot: id }, loading: 'lazy' });
      el.append(img);
      const caseId = this.id;
      this.api.blobUrl(`/api/v1/snapshots/${enc(id)}`).then((url) => {
        if (caseId !== this.id) { URL.revokeObjectURL(url); return; }
        this.blobs.set(id, url);
        img.src = url;
        img.dataset.loaded = 'true';
      }).catch(() => { img.dataset.loaded = 'error'; img.alt = `${id}: —`; });
    }
  }
}

function fmtNum(v) {
  if (v === null || v === undefined || v === '') return '—';
  return typeof v === 'number' ? String(Math.round(v * 1000) / 1000) : String(v);
}

// A timeline detail in a line: its short scalar fields.
function summarize(d) {
  const parts = [];
  for (const [k, v] of Object.entries(d)) {
    if (v === null || typeof v === 'object' || v === '' || parts.length >= 5) continue;
    parts.push(`${k}=${typeof v === 'number' && v > 1e12 ? fmtTime(v) : v}`);
  }
  return parts.join(' ');
}

// The KPI dashboard: GET /api/v1/kpi for a period (today / 7 / 30 city-local
// days) grouped by department, district or category, drawn as SVG bar charts
// (composite score; on-time rates), a cases-per-day chart and a table with
// the counts, rates and mean / p90 times behind them.
import { t } from './i18n.js';
import { h, clear, localDate, fmtRate, fmtSpan, departmentName, districtName, categoryName } from './util.js';

const PERIODS = { today: 0, '7d': 6, '30d': 29 };
const GROUPS = ['department', 'district', 'category'];
const RATE_SERIES = ['on_time_ack_rate', 'on_time_close_rate'];
const TABLE_RATES = ['registration_rate', 'dispatch_rate', 'close_rate', 'on_time_close_rate', 'on_time_ack_rate', 'accurate_dispatch_rate', 'rework_rate', 'extension_rate', 'reopen_rate'];
const TIMES = ['acknowledge', 'arrive', 'handle', 'close'];
const COUNTS = ['accepted', 'registered', 'dispatched', 'closed', 'closed_on_time'];

export class KpiDashboard {
  constructor(root, { api }) {
    this.root = root;
    this.api = api;
    this.period = '7d';
    this.group = 'department';
    this.data = null;
    this.seq = 0;
    this.build();
  }

  groupName(id) {
    if (this.group === 'department') return departmentName(id);
    if (this.group === 'district') return districtName(id);
    if (this.group === 'category') return categoryName(id);
    return id;
  }

  build() {
    const r = clear(this.root);
    const picker = (name, options, current, label, onPick) => h('div', { class: 'segmented', role: 'group', 'aria-label': label },
      options.map((o) => h('button', {
        type: 'button', testid: `kpi-${name}-${o}`, 'aria-pressed': String(o === current),
        onclick: () => onPick(o),
      }, t(`kpi.${name}.${o}`))));
    this.status = h('span', { class: 'muted', testid: 'kpi-range', role: 'status' });
    this.tiles = h('div', { class: 'kpi-tiles', testid: 'kpi-tiles' });
    this.scoreChart = h('div', { class: 'chart', testid: 'kpi-score-chart' });
    this.rateChart = h('div', { class: 'chart', testid: 'kpi-rate-chart' });
    this.trendChart = h('div', { class: 'chart', testid: 'kpi-trend-chart' });
    this.table = h('div', { class: 'kpi-table-wrap', testid: 'kpi-table' });
    r.append(
      h('div', { class: 'kpi-controls' },
        h('h2', {}, t('kpi.title')),
        h('span', { class: 'label' }, t('kpi.period')),
        picker('period', Object.keys(PERIODS), this.period, t('kpi.period'), (p) => { this.period = p; this.build(); this.load(); }),
        h('span', { class: 'label' }, t('kpi.group')),
        picker('group', GROUPS, this.group, t('kpi.group'), (g) => { this.group = g; this.build(); this.load(); }),
        this.status),
      this.tiles,
      h('div', { class: 'kpi-grid' },
        h('section', { class: 'panel' }, h('h3', {}, t('kpi.score')), this.scoreChart),
        h('section', { class: 'panel' }, h('h3', {}, t('kpi.rates')), this.rateChart),
        h('section', { class: 'panel wide' }, h('h3', {}, t('kpi.trend')), this.trendChart),
        h('section', { class: 'panel wide' }, h('h3', {}, t('kpi.table')), this.table)),
    );
    if (this.data) this.render();
  }

  range() {
    const now = Date.now();
    return { from: localDate(now, -PERIODS[this.period]), to: localDate(now) };
  }

  async load() {
    const seq = ++this.seq;
    const { from, to } = this.range();
    const q = (g) => this.api.get(`/api/v1/kpi?group_by=${g}&from=${from}&to=${to}`);
    this.status.textContent = `${from} — ${to} ${t('case.loading')}`;
    try {
      const [groups, total, days] = await Promise.all([q(this.group), q('total').catch(() => null), q('day').catch(() => null)]);
      if (seq !== this.seq) return;
      this.data = { groups, total, days, from, to };
      this.render();
    } catch (e) {
      if (seq !== this.seq) return;
      this.status.textContent = `${t('error.http')}: ${e.message}`;
      this.root.dataset.state = 'error';
    }
  }

  render() {
    const { groups, total, days, from, to } = this.data;
    this.status.textContent = `${from} — ${to}`;
    this.root.dataset.state = 'loaded';
    const rows = (groups && groups.rows) || [];
    const tot = total && total.rows && total.rows[0];
    clear(this.tiles).append(
      tile(t('kpi.accepted'), tot ? tot.counts.accepted ?? 0 : '—', 'kpi-tile-accepted'),
      tile(t('kpi.closed'), tot ? tot.counts.closed ?? 0 : '—', 'kpi-tile-closed'),
      tile(t('kpi.rate.on_time_close_rate'), tot ? fmtRate(tot.rates.on_time_close_rate) : '—', 'kpi-tile-on-time'),
      tile(t('kpi.rate.on_time_ack_rate'), tot ? fmtRate(tot.rates.on_time_ack_rate) : '—', 'kpi-tile-ack'),
      tile(t('kpi.score'), tot && tot.score !== null && tot.score !== undefined ? tot.score.toFixed(1) : '—', 'kpi-tile-score'),
    );
    const byScore = [...rows].sort((a, b) => (b.score ?? -1) - (a.score ?? -1));
    clear(this.scoreChart).append(rows.length ? hbars(byScore.map((r) => ({
      key: r.group, label: this.groupName(r.group),
      values: [{ v: r.score === null || r.score === undefined ? null : r.score / 100, text: r.score === null || r.score === undefined ? '—' : r.score.toFixed(1), cls: 'bar-score' }],
    })), 'score') : empty());
    clear(this.rateChart).append(rows.length ? hbars(rows.map((r) => ({
      key: r.group, label: this.groupName(r.group),
      values: RATE_SERIES.map((name, i) => ({ v: r.rates[name] ?? null, text: fmtRate(r.rates[name]), cls: `bar-s${i}` })),
    })), 'rate') : empty(), rows.length ? legend(RATE_SERIES.map((n, i) => [t(`kpi.rate.${n}`), `bar-s${i}`])) : null);
    const dayRows = (days && days.rows) || [];
    clear(this.trendChart).append(dayRows.length ? vbars(dayRows) : empty(),
      dayRows.length ? legend([[t('kpi.accepted'), 'bar-s0'], [t('kpi.closed'), 'bar-s1']]) : null);
    clear(this.table).append(rows.length ? this.tableOf(rows) : empty());
  }

  tableOf(rows) {
    const head = [t('kpi.group_col'), ...COUNTS.map((c) => t(`kpi.${c}`)), ...TABLE_RATES.map((r) => t(`kpi.rate.${r}`)),
      ...TIMES.map((x) => `${t(`kpi.time.${x}`)} (${t('kpi.mean')} / ${t('kpi.p90')})`), t('kpi.score')];
    return h('table', { class: 'kpi-table' },
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((r) => h('tr', { testid: `kpi-row-${r.group}` },
        h('th', { scope: 'row' }, this.groupName(r.group)),
        COUNTS.map((c) => h('td', { class: 'num' }, String(r.counts[c] ?? 0))),
        TABLE_RATES.map((n) => h('td', { class: 'num' }, fmtRate(r.rates[n]))),
        TIMES.map((x) => {
          const d = r.times && r.times[x];
          return h('td', { class: 'num' }, d && d.count ? `${fmtSpan(d.mean_ms)} / ${fmtSpan(d.p90_ms)}` : '—');
        }),
        h('td', { class: 'num' }, r.score === null || r.score === undefined ? '—' : r.score.toFixed(1))))));
  }
}

function tile(label, value, testid) {
  return h('div', { class: 'tile', testid }, h('div', { class: 'tile-value' }, String(value)), h('div', { class: 'tile-label' }, label));
}

function empty() {
  return h('p', { class: 'muted', testid: 'kpi-empty' }, t('kpi.no_data'));
}

function legend(items) {
  return h('div', { class: 'legend' }, items.map(([label, cls]) => h('span', {}, h('i', { class: `swatch ${cls}` }), label)));
}

// Horizontal bars, one group per row and one bar per value (0..1).
function hbars(rows, kind) {
  const labelW = 170, barW = 330, textW = 60, barH = 14, gap = 4, rowGap = 10;
  const n = rows.length ? rows[0].values.length : 1;
  const rowH = n * barH + (n - 1) * gap;
  const height = rows.length * (rowH + rowGap) + rowGap;
  const width = labelW + barW + textW;
  const svg = h('svg:svg', { viewBox: `0 0 ${width} ${height}`, class: 'bars hbars', role: 'img', 'aria-label': kind });
  // 0 / 50 / 100 % guides
  for (const f of [0, 0.5, 1]) {
    svg.append(h('svg:line', { x1: labelW + f * barW, x2: labelW + f * barW, y1: 4, y2: height - 4, class: 'guide' }));
  }
  rows.forEach((r, i) => {
    const y0 = rowGap + i * (rowH + rowGap);
    const g = h('svg:g', { testid: `kpi-${kind}-${r.key}` });
    g.append(h('svg:text', { x: labelW - 8, y: y0 + rowH / 2 + 5, class: 'bar-label', 'text-anchor': 'end' }, clip(r.label, 22)));
    r.values.forEach((v, j) => {
      const y = y0 + j * (barH + gap);
      const w = v.v === null ? 0 : Math.max(1, Math.min(1, v.v) * barW);
      g.append(h('svg:rect', { x: labelW, y, width: barW, height: barH, class: 'bar-track' }));
      if (v.v !== null) g.append(h('svg:rect', { x: labelW, y, width: w.toFixed(1), height: barH, class: `bar ${v.cls}`, dataset: { value: String(v.v) } }));
      g.append(h('svg:text', { x: labelW + barW + 6, y: y + barH - 2, class: 'bar-value' }, v.text));
    });
    g.append(h('svg:title', {}, `${r.label}: ${r.values.map((v) => v.text).join(' / ')}`));
    svg.append(g);
  });
  return svg;
}

// Vertical bars per day: accepted and closed.
function vbars(rows) {
  const width = 1200, height = 200, padL = 40, padB = 26, padT = 10;
  const max = Math.max(1, ...rows.map((r) => Math.max(r.counts.accepted || 0, r.counts.closed || 0)));
  const slot = (width - padL) / rows.length;
  const bw = Math.max(2, Math.min(18, slot / 2 - 2));
  const svg = h('svg:svg', { viewBox: `0 0 ${width} ${height}`, class: 'bars', role: 'img', 'aria-label': t('kpi.trend') });
  const plotH = height - padB - padT;
  svg.append(h('svg:line', { x1: padL, x2: width, y1: height - padB, y2: height - padB, class: 'guide' }));
  svg.append(h('svg:text', { x: padL - 6, y: padT + 8, class: 'bar-value', 'text-anchor': 'end' }, String(max)));
  const every = Math.ceil(rows.length / 10);
  rows.forEach((r, i) => {
    const x = padL + i * slot + slot / 2;
    [['accepted', 'bar-s0', -bw - 1], ['closed', 'bar-s1', 1]].forEach(([key, cls, dx]) => {
      const v = r.counts[key] || 0;
      const bh = (v / max) * plotH;
      svg.append(h('svg:rect', { x: (x + dx).toFixed(1), y: (height - padB - bh).toFixed(1), width: bw.toFixed(1), height: bh.toFixed(1), class: `bar ${cls}` },
        h('svg:title', {}, `${r.group} ${t(`kpi.${key}`)}: ${v}`)));
    });
    if (i % every === 0) svg.append(h('svg:text', { x: x.toFixed(1), y: height - 8, class: 'bar-label', 'text-anchor': 'middle' }, String(r.group).slice(5)));
  });
  return svg;
}

function clip(s, n) {
  s = String(s);
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

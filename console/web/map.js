// The city map: every grid cell as an SVG polygon from its corners (lat/lon
// projected linearly into the SVG box, x scaled by cos(latitude) so cells
// keep their shape), district borders and names, cells coloured by the worst
// SLA light of their open cases, one marker per open case (size = priority,
// colour = light) and the units' live positions.
import { t } from './i18n.js';
import {
  h, clear, slaState, PRIORITY_RANK, categoryName, districtName, departmentName, priorityName, statusName, fmtTime,
} from './util.js';

const W = 1000;
const PAD = 16;
const LIGHT_WORST = { none: 0, green: 1, yellow: 2, red: 3 };
const RADIUS = { urgent: 11, high: 9, normal: 7, low: 6 };

export class CityMap {
  constructor(container, city, { onOpenCase }) {
    this.container = container;
    this.city = city;
    this.onOpenCase = onOpenCase;
    this.cells = new Map(); // index -> {cell, poly, count}
    this.codeToIndex = new Map();
    this.caseMarks = new Map(); // case id -> circle
    this.unitMarks = new Map(); // unit id -> g
    this.build();
  }

  project(lat, lon) {
    return [PAD + (lon - this.minLon) * this.kx * this.scale, PAD + (this.maxLat - lat) * this.scale];
  }

  build() {
    const cells = (this.city.grid && this.city.grid.cells) || [];
    let minLat = Infinity, maxLat = -Infinity, minLon = Infinity, maxLon = -Infinity;
    for (const c of cells) {
      for (const [lat, lon] of c.corners) {
        minLat = Math.min(minLat, lat); maxLat = Math.max(maxLat, lat);
        minLon = Math.min(minLon, lon); maxLon = Math.max(maxLon, lon);
      }
    }
    if (!cells.length) { minLat = 0; maxLat = 1; minLon = 0; maxLon = 1; }
    this.minLon = minLon;
    this.maxLat = maxLat;
    this.kx = Math.cos(((minLat + maxLat) / 2) * Math.PI / 180);
    this.scale = (W - 2 * PAD) / Math.max((maxLon - minLon) * this.kx, 1e-9);
    const height = Math.ceil((maxLat - minLat) * this.scale + 2 * PAD);

    const svg = h('svg:svg', {
      viewBox: `0 0 ${W} ${height}`, class: 'city-map', role: 'group', 'aria-label': t('map.title'),
      preserveAspectRatio: 'xMidYMid meet', testid: 'map-svg',
    });
    this.gCells = h('svg:g', { class: 'cells' });
    this.gBorders = h('svg:g', { class: 'district-borders', 'aria-hidden': 'true' });
    this.gLabels = h('svg:g', { class: 'district-labels', 'aria-hidden': 'true' });
    this.gCounts = h('svg:g', { class: 'cell-counts', 'aria-hidden': 'true' });
    this.gUnits = h('svg:g', { class: 'units' });
    this.gCases = h('svg:g', { class: 'case-marks' });
    svg.append(this.gCells, this.gBorders, this.gLabels, this.gCounts, this.gUnits, this.gCases);

    const byRowCol = new Map();
    for (const c of cells) {
      byRowCol.set(`${c.row},${c.col}`, c);
      this.codeToIndex.set(c.code, c.index);
      const pts = c.corners.map(([lat, lon]) => this.project(lat, lon));
      const poly = h('svg:polygon', {
        points: pts.map((p) => p.map((v) => v.toFixed(1)).join(',')).join(' '),
        class: 'cell', testid: `map-cell-${c.index}`, dataset: { light: '', count: '0', code: c.code },
      });
      const title = h('svg:title', {});
      poly.append(title);
      poly.addEventListener('click', () => this.openWorst(c.index));
      this.gCells.append(poly);
      const cx = pts.reduce((s, p) => s + p[0], 0) / pts.length;
      const cy = pts.reduce((s, p) => s + p[1], 0) / pts.length;
      // The count sits in the cell's top-left corner, clear of the case markers.
      const left = Math.min(...pts.map((p) => p[0]));
      const top = Math.min(...pts.map((p) => p[1]));
      const count = h('svg:text', { x: (left + 6).toFixed(1), y: (top + 17).toFixed(1), class: 'cell-count' });
      this.gCounts.append(count);
      this.cells.set(c.index, { cell: c, poly, title, count, cx, cy, cases: [] });
    }

    // District borders: cell edges whose neighbour is in another district (or none).
    for (const c of cells) {
      const e = edges(c);
      const nb = { s: [c.row - 1, c.col], n: [c.row + 1, c.col], w: [c.row, c.col - 1], e: [c.row, c.col + 1] };
      for (const side of ['s', 'n', 'w', 'e']) {
        const other = byRowCol.get(nb[side].join(','));
        if (other && other.district === c.district) continue;
        const [a, b] = e[side].map(([lat, lon]) => this.project(lat, lon));
        this.gBorders.append(h('svg:line', {
          x1: a[0].toFixed(1), y1: a[1].toFixed(1), x2: b[0].toFixed(1), y2: b[1].toFixed(1),
          class: other ? 'border-inner' : 'border-outer',
        }));
      }
    }
    this.labels = [];
    const groups = new Map();
    for (const v of this.cells.values()) {
      const g = groups.get(v.cell.district) || { x: 0, y: 0, n: 0, top: Infinity };
      g.x += v.cx; g.y += v.cy; g.n += 1;
      groups.set(v.cell.district, g);
    }
    for (const [id, g] of groups) {
      const text = h('svg:text', { x: (g.x / g.n).toFixed(1), y: (g.y / g.n).toFixed(1), class: 'district-label', testid: `map-district-${id}` });
      this.labels.push([text, id]);
      this.gLabels.append(text);
    }

    clear(this.container).append(svg);
    this.svg = svg;
    this.relabel();
  }

  relabel() {
    for (const [text, id] of this.labels) text.textContent = districtName(id);
    for (const v of this.cells.values()) this.describeCell(v);
  }

  describeCell(v) {
    const c = v.cell;
    v.title.textContent = `${c.code} ${districtName(c.district)}${v.cases.length ? ` — ${t('map.cell_cases', { n: v.cases.length })}` : ''}`;
  }

  cellOf(kase) {
    if (Number.isInteger(kase.cell) && this.cells.has(kase.cell)) return kase.cell;
    if (kase.grid && this.codeToIndex.has(kase.grid)) return this.codeToIndex.get(kase.grid);
    return null;
  }

  // cases: open cases, most urgent first.
  update(cases, selectedId, now) {
    for (const v of this.cells.values()) v.cases = [];
    const seen = new Set();
    for (const k of cases) {
      const idx = this.cellOf(k);
      const sla = slaState(k, now);
      if (idx !== null) this.cells.get(idx).cases.push({ k, light: sla.light });
      seen.add(k.id);
      let mark = this.caseMarks.get(k.id);
      if (!mark) {
        mark = h('svg:circle', { tabindex: '0', role: 'button', testid: `map-case-${k.id}`, class: 'case-mark' });
        mark.append(h('svg:title', {}));
        mark.addEventListener('click', () => this.onOpenCase(k.id));
        mark.addEventListener('keydown', (e) => {
          if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.onOpenCase(k.id); }
        });
        this.caseMarks.set(k.id, mark);
      }
      let lat = k.lat, lon = k.lon;
      if ((!lat && !lon) && idx !== null) {
        const v = this.cells.get(idx);
        mark.setAttribute('cx', v.cx.toFixed(1));
        mark.setAttribute('cy', v.cy.toFixed(1));
      } else {
        const [x, y] = this.project(lat, lon);
        mark.setAttribute('cx', x.toFixed(1));
        mark.setAttribute('cy', y.toFixed(1));
      }
      mark.setAttribute('r', RADIUS[k.priority] || 7);
      mark.dataset.light = sla.light;
      mark.dataset.priority = k.priority || '';
      mark.dataset.status = k.status || '';
      mark.classList.toggle('selected', k.id === selectedId);
      const label = `${k.id} ${categoryName(k.category)} · ${priorityName(k.priority)} · ${statusName(k.status)} · ${t(`light.${sla.light}`)} · ${departmentName(k.department)} · ${fmtTime(k.first_event)}`;
      mark.setAttribute('aria-label', label);
      mark.firstChild.textContent = label;
    }
    for (const [id, mark] of this.caseMarks) {
      if (!seen.has(id)) { mark.remove(); this.caseMarks.delete(id); }
    }
    // Most urgent drawn last (on top): cases arrive most urgent first.
    for (let i = cases.length - 1; i >= 0; i--) this.gCases.append(this.caseMarks.get(cases[i].id));
    for (const v of this.cells.values()) {
      let worst = '';
      for (const { light } of v.cases) if (!worst || LIGHT_WORST[light] > LIGHT_WORST[worst]) worst = light;
      v.poly.dataset.light = worst;
      v.poly.dataset.count = String(v.cases.length);
      v.poly.classList.toggle('has-cases', v.cases.length > 0);
      v.count.textContent = v.cases.length ? String(v.cases.length) : '';
      this.describeCell(v);
    }
  }

  openWorst(index) {
    const v = this.cells.get(index);
    if (!v || !v.cases.length) return;
    const sorted = [...v.cases].sort((a, b) => (LIGHT_WORST[b.light] - LIGHT_WORST[a.light])
      || ((PRIORITY_RANK[a.k.priority] ?? 9) - (PRIORITY_RANK[b.k.priority] ?? 9)));
    this.onOpenCase(sorted[0].k.id);
  }

  updateUnits(units) {
    const seen = new Set();
    for (const u of units || []) {
      if (!Number.isFinite(u.lat) || !Number.isFinite(u.lon) || (!u.lat && !u.lon)) continue;
      seen.add(u.id);
      let g = this.unitMarks.get(u.id);
      if (!g) {
        g = h('svg:g', { class: 'unit', testid: `unit-${u.id}` },
          h('svg:rect', { x: -5, y: -5, width: 10, height: 10, transform: 'rotate(45)' }),
          h('svg:title', {}));
        this.unitMarks.set(u.id, g);
        this.gUnits.append(g);
      }
      const [x, y] = this.project(u.lat, u.lon);
      g.setAttribute('transform', `translate(${x.toFixed(1)},${y.toFixed(1)})`);
      g.dataset.status = u.status || '';
      g.dataset.department = u.department || '';
      g.lastChild.textContent = `${u.id} · ${departmentName(u.department)} · ${t(`unit.${u.status}`)}${u.case ? ` · ${u.case}` : ''}`;
    }
    for (const [id, g] of this.unitMarks) {
      if (!seen.has(id)) { g.remove(); this.unitMarks.delete(id); }
    }
  }
}

// The four sides of a cell from its corners, whatever their order: the
// southern pair has the smaller latitudes, west the smaller longitudes.
function edges(cell) {
  const byLat = [...cell.corners].sort((a, b) => a[0] - b[0]);
  const south = byLat.slice(0, 2).sort((a, b) => a[1] - b[1]);
  const north = byLat.slice(2).sort((a, b) => a[1] - b[1]);
  const [sw, se] = south;
  const [nw, ne] = north;
  return { s: [sw, se], n: [nw, ne], w: [sw, nw], e: [se, ne] };
}

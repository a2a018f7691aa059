#!/usr/bin/env node
// A mock of the cityloop console API (CONTRACT.md "HTTP API"), to develop
// and test console/web without the engine: Node's http module only, no
// packages. It serves console/web at / and fakes, with the engine's JSON
// shapes, whoami, city, units, cases (+ timeline, signals, snapshots),
// actions (202 pending then applied, or 200 with --sync; 409 / 403 when not
// allowed), KPIs and the SSE stream (ids, event types, Last-Event-ID resume).
//
//   node tests/e2e/mock-api.js [--port 8090] [--host 127.0.0.1] [--incident-every 20] [--sync]
//
// Tokens: op-token (operator), sup-token (supervisor), viewer-token (viewer),
// yuelu-token (operator of district yuelu only).
// Test controls (no token, mock only):
//   POST /__mock/incident[?category=gas_leak&cell=12]  opens a new case now -> {id}
//   POST /__mock/drop-streams                          cuts every SSE connection
//   GET  /__mock/state                                 {stream_connections:[{last_event_id}], last_seq, open}
'use strict';

const http = require('http');
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const WEB_ROOT = path.resolve(__dirname, '../../console/web');
const UTC_OFFSET_MIN = 480;
const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.json': 'application/json',
  '.ico': 'image/x-icon',
};

const TOKENS = {
  'op-token': { name: 'op-zhang', role: 'operator', districts: [] },
  'sup-token': { name: 'sup-li', role: 'supervisor', districts: [] },
  'viewer-token': { name: 'wall-display', role: 'viewer', districts: [] },
  'yuelu-token': { name: 'op-wang', role: 'operator', districts: ['yuelu'] },
};
const OPERATOR_ACTIONS = new Set(['acknowledge', 'enroute', 'arrive', 'handled', 'verify_pass', 'verify_fail', 'close',
  'return', 'reassign', 'extend', 'assist', 'defer']);
const SUPERVISOR_ACTIONS = new Set(['suspend', 'resume', 'invalidate', 'reopen', 'merge']);

// ---- the city (the demo city of deploy/cityloop.example.yaml) ------------------

const DEPARTMENTS = [
  { id: 'drainage', name: '排水事务中心' }, { id: 'gas', name: '燃气集团' },
  { id: 'municipal', name: '市政设施维护中心' }, { id: 'fire', name: '消防救援支队' },
  { id: 'environment', name: '生态环境局' }, { id: 'traffic', name: '交警支队' },
  { id: 'city_management', name: '城市管理和综合执法局' },
];
const CATEGORIES = [
  ['waterlogging', '道路积水', '0302', 'drainage', 'high'], ['gas_leak', '燃气泄漏', '0105', 'gas', 'urgent'],
  ['manhole_displaced', '井盖移位', '0101', 'municipal', 'high'], ['fire', '火灾烟雾', '0601', 'fire', 'urgent'],
  ['air_pollution', '空气污染', '0401', 'environment', 'normal'], ['noise', '噪声扰民', '0402', 'environment', 'low'],
  ['streetlight_failure', '路灯故障', '0103', 'municipal', 'low'], ['traffic_congestion', '交通拥堵', '0203', 'traffic', 'normal'],
  ['fire_candidate', '疑似火情', '0602', 'fire', 'high'], ['road_obstacle', '道路遗撒障碍物', '0205', 'municipal', 'high'],
  ['exposed_garbage', '暴露垃圾', '0301', 'city_management', 'normal'], ['illegal_parking', '违章停车', '0204', 'traffic', 'normal'],
].map(([id, name, code, department, priority]) => ({ id, name, code, department, priority }));
const CAT = Object.fromEntries(CATEGORIES.map((c) => [c.id, c]));
const DISTRICTS = [
  { id: 'yuelu', name: '岳麓区', code: '430104' },
  { id: 'tianxin', name: '天心区', code: '430103' },
  { id: 'furong', name: '芙蓉区', code: '430102' },
];
// [district, street, street code, community, community code, rows, cols]
const COMMUNITIES = [
  ['yuelu', 'yuelu-jiedao', '001', 'houhu', '001', [0, 2], [0, 1]],
  ['yuelu', 'yuelu-jiedao', '001', 'taozihu', '002', [0, 2], [2, 2]],
  ['yuelu', 'juzizhou', '002', 'yingwanzhen', '001', [3, 4], [0, 2]],
  ['yuelu', 'juzizhou', '002', 'juzhou', '002', [5, 5], [0, 2]],
  ['tianxin', 'pozijie', '001', 'pozijie-shequ', '001', [0, 1], [3, 5]],
  ['tianxin', 'pozijie', '001', 'bixiang', '002', [2, 2], [3, 5]],
  ['tianxin', 'chengnanlu', '002', 'tianxinge', '001', [0, 2], [6, 6]],
  ['tianxin', 'chengnanlu', '002', 'baisha', '002', [0, 2], [7, 7]],
  ['furong', 'dingwangtai', '001', 'liuzhengjie', '001', [3, 5], [3, 4]],
  ['furong', 'dingwangtai', '001', 'hongming', '002', [3, 5], [5, 5]],
  ['furong', 'wulipai', '002', 'chaoyang', '001', [3, 4], [6, 7]],
  ['furong', 'wulipai', '002', 'wulipai-shequ', '002', [5, 5], [6, 7]],
];
const ROWS = 6, COLS = 8, LAT0 = 28.17, LON0 = 112.95, CELL_M = 500;
const DLAT = CELL_M / 111320;
const DLON = CELL_M / (111320 * Math.cos(LAT0 * Math.PI / 180));

function buildCity() {
  const cells = [];
  for (const [district, street, streetCode, community, commCode, rows, cols] of COMMUNITIES) {
    const dcode = DISTRICTS.find((d) => d.id === district).code;
    let n = 0;
    for (let row = rows[0]; row <= rows[1]; row++) {
      for (let col = cols[0]; col <= cols[1]; col++) {
        n += 1;
        const s = LAT0 + row * DLAT, w = LON0 + col * DLON;
        cells.push({
          index: row * COLS + col, code: `${dcode}-${streetCode}-${commCode}-${String(n).padStart(2, '0')}`,
          district, street, community, row, col,
          corners: [[s, w], [s, w + DLON], [s + DLAT, w + DLON], [s + DLAT, w]].map(([a, b]) => [round6(a), round6(b)]),
        });
      }
    }
  }
  cells.sort((a, b) => a.index - b.index);
  return {
    name: 'Changsha (demo)',
    districts: DISTRICTS.map(({ id, name }) => ({ id, name })),
    departments: DEPARTMENTS,
    categories: CATEGORIES.map(({ id, name, department, priority }) => ({ id, name, department, priority })),
    grid: { rows: ROWS, cols: COLS, cells },
    utc_offset_minutes: UTC_OFFSET_MIN,
  };
}

function round6(v) { return Math.round(v * 1e6) / 1e6; }

const UNITS = [
  ['drain-01', 'truck', 'drainage', 28.1785, 112.956], ['drain-07', 'truck', 'drainage', 28.189, 112.979],
  ['gas-repair-01', 'car', 'gas', 28.176, 112.98], ['gas-repair-02', 'car', 'gas', 28.192, 112.96],
  ['muni-01', 'car', 'municipal', 28.174, 112.965], ['muni-02', 'car', 'municipal', 28.19, 112.975],
  ['fire-01', 'engine', 'fire', 28.188, 112.972], ['env-01', 'car', 'environment', 28.18, 112.985],
  ['traffic-01', 'motorbike', 'traffic', 28.183, 112.962], ['cm-01', 'car', 'city_management', 28.186, 112.968],
];

// ---- tiny PNG for camera snapshots ------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
// A 320x240 "camera frame": a dusk street with a red detection box.
function snapshotPng(seed) {
  const w = 320, hgt = 240;
  const raw = Buffer.alloc((w * 3 + 1) * hgt);
  for (let y = 0; y < hgt; y++) {
    raw[y * (w * 3 + 1)] = 0;
    for (let x = 0; x < w; x++) {
      const o = y * (w * 3 + 1) + 1 + x * 3;
      const road = y > 140 && Math.abs(x - 160) < (y - 100) * 1.2;
      let r = road ? 60 : 20 + y / 8, g = road ? 60 : 30 + y / 6, b = road ? 70 : 60 + y / 5;
      const box = x > 120 + seed % 40 && x < 200 + seed % 40 && y > 150 && y < 200;
      const edge = box && (x < 123 + seed % 40 || x > 196 + seed % 40 || y < 153 || y > 196);
      if (edge) { r = 255; g = 60; b = 60; } else if (box) { r += 40; g += 30; b += 20; }
      raw[o] = r; raw[o + 1] = g; raw[o + 2] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(hgt, 4);
  ihdr[8] = 8; ihdr[9] = 2; ihdr[10] = 0; ihdr[11] = 0; ihdr[12] = 0;
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

// ---- the mock engine ----------------------------------------------------------------

function mulberry32(a) {
  return () => {
    a |= 0; a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LIMITS = { // ms per stage by priority
  acknowledge: { urgent: 10 * 60e3, high: 15 * 60e3, normal: 30 * 60e3, low: 60 * 60e3 },
  arrive: { urgent: 20 * 60e3, high: 30 * 60e3, normal: 60 * 60e3, low: 120 * 60e3 },
  handle: { urgent: 2 * 3600e3, high: 4 * 3600e3, normal: 8 * 3600e3, low: 24 * 3600e3 },
  verify: { urgent: 3600e3, high: 3600e3, normal: 2 * 3600e3, low: 2 * 3600e3 },
};
const WEIGHTS = { on_time_close_rate: 0.3, close_rate: 0.2, on_time_ack_rate: 0.2, accurate_dispatch_rate: 0.15, rework_rate: -0.1, reopen_rate: -0.05 };
const RATES = [
  ['registration_rate', 'registered', 'accepted'], ['dispatch_rate', 'dispatched', 'registered'],
  ['close_rate', 'closed', 'due_to_close'], ['on_time_close_rate', 'closed_on_time', 'due_to_close'],
  ['rework_rate', 'reworked', 'due_to_close'], ['extension_rate', 'extended', 'due_to_close'],
  ['on_time_ack_rate', 'acknowledged_on_time', 'dispatches'], ['accurate_dispatch_rate', 'not_returned', 'dispatches'],
  ['reopen_rate', 'reopened', 'closed'],
];

function startClock(stage, priority, at) {
  const limit = LIMITS[stage][priority] || LIMITS[stage].normal;
  return { started: at, limit, warn: at + Math.round(limit * 0.8), deadline: at + limit, stopped: 0, paused_total: 0, working: false, light: 'green', escalations: 0 };
}
function stopClock(k, at) { if (k && !k.stopped) k.stopped = at; }

function localDay(ms) { return new Date(ms + UTC_OFFSET_MIN * 60000).toISOString().slice(0, 10); }

class MockEngine {
  constructor({ seed = 7, sync = false, applyDelayMs = 250 } = {}) {
    this.rand = mulberry32(seed);
    this.sync = sync;
    this.applyDelayMs = applyDelayMs;
    this.city = buildCity();
    this.cases = new Map();
    this.timelines = new Map();
    this.events = []; // ring: {seq, type, json}
    this.seq = 0;
    this.counter = 0;
    this.clients = new Set();
    this.connections = []; // {last_event_id, at}
    this.snapshots = new Map();
    this.units = UNITS.map(([id, type, department, lat, lon]) => ({ id, department, type, status: 'available', lat, lon, ts: Date.now(), case: '' }));
    this.timers = [];
    this.seed();
  }

  cell(index) { return this.city.grid.cells[index]; }

  nextId(at) {
    this.counter += 1;
    return `CL-${localDay(at).replace(/-/g, '')}-${String(this.counter).padStart(6, '0')}`;
  }

  emit(kase, type, detail = {}, actor = { name: 'cityloop', role: 'system' }, reason = '') {
    this.seq += 1;
    const at = Date.now();
    const ev = {
      specversion: '1.0', id: `${kase.id}:${this.seq}`, source: 'cityloop/mock', type, time: new Date(at).toISOString(),
      subject: kase.id, datacontenttype: 'application/json',
      data: { case_id: kase.id, status: kase.status, category: kase.category, priority: kase.priority, department: kase.department, grid: kase.grid, ...detail },
    };
    const json = JSON.stringify(ev);
    this.events.push({ seq: this.seq, type, json });
    if (this.events.length > 2000) this.events.shift();
    const tl = this.timelines.get(kase.id) || [];
    tl.push({ seq: tl.length + 1, action: type, at: new Date(at).toISOString(), at_ms: at, actor: actor.name, role: actor.role, status: kase.status, reason: reason || undefined, detail });
    this.timelines.set(kase.id, tl);
    kase.event_seq = this.seq;
    kase.updated = at;
    const frame = `id: ${this.seq}\nevent: ${type}\ndata: ${json}\n\n`;
    for (const res of this.clients) res.write(frame);
  }

  // A case of category at cell, first seen `age` ms ago; stage: registered | dispatched | acknowledged | closed.
  makeCase({ category, cell, age = 0, stage = 'dispatched', withCamera = false, at }) {
    const now = at || Date.now();
    const c = this.cell(cell);
    const cat = CAT[category];
    const first = now - age;
    const lat = round6(c.corners[0][0] + DLAT * (0.25 + this.rand() * 0.5));
    const lon = round6(c.corners[0][1] + DLON * (0.25 + this.rand() * 0.5));
    const k = {
      id: this.nextId(first), category, category_code: cat.code, priority: cat.priority, status: 'registered',
      cell, grid: c.code, district: c.district, street: c.street, community: c.community, department: cat.department,
      lat, lon, recommended_unit: '', first_event: first, first_ingest: first + 800, registered: first + 2000,
      dispatched: 0, handled: 0, verified: 0, closed: 0, reopened: 0, invalidated: 0, last_signal: first,
      updated: first, tasks: [], verify_clock: null, close_clock: null, returns: 0, reworks: 0, reopens: 0,
      extensions: 0, dispatches: 0, deferred: false, event_seq: 0, merged_into: '', signal_count: 0, signals: [],
    };
    const sig = withCamera
      ? { source: 'camera', device_id: `cam-0${10 + cell % 30}`, rule: 'camera_fire', value: 0.82, threshold: 0.6, explanation: 'smoke-coloured region growing for 5 s' }
      : { source: 'sensor', device_id: `${category.slice(0, 3)}-00${1 + cell % 9}`, rule: `${category}_threshold`, value: 0.42, threshold: 0.3, explanation: 'value above threshold for 3 readings' };
    const attributes = {};
    if (withCamera) {
      const sid = `snap-${k.id}`;
      this.snapshots.set(sid, snapshotPng(cell));
      attributes.snapshot = sid;
    }
    k.signals.push({ id: `sig-${k.id}-1`, category, priority: k.priority, cell, lat, lon, ts: first, fired: first, ingest: first + 800, sensor_kind: '', input: '', attributes, members: [], ...sig });
    k.signal_count = 1;
    this.cases.set(k.id, k);
    if (stage !== 'registered') this.dispatch(k, first + 60000);
    if (stage === 'acknowledged' || stage === 'closed') {
      const t = k.tasks[0];
      t.status = 'acknowledged'; t.acknowledged = first + 240000; stopClock(t.acknowledge_clock, t.acknowledged);
      k.status = 'acknowledged';
      t.arrive_clock = startClock('arrive', k.priority, t.acknowledged);
    }
    if (stage === 'closed') {
      const t = k.tasks[0];
      const late = this.rand() < 0.2;
      t.arrived = t.acknowledged + 600000; stopClock(t.arrive_clock, t.arrived);
      t.handle_clock = startClock('handle', k.priority, t.arrived);
      t.handled = t.arrived + (late ? t.handle_clock.limit * 1.3 : t.handle_clock.limit * 0.4); stopClock(t.handle_clock, t.handled);
      t.status = 'handled';
      k.handled = t.handled; k.closed = t.handled + 900000; k.verified = k.closed; k.status = 'closed';
    }
    return k;
  }

  dispatch(k, at) {
    const unit = this.nearestUnit(k);
    k.tasks.push({
      department: k.department, lead: true, status: 'dispatched', unit: '', dispatched: at, acknowledged: 0, enroute: 0, arrived: 0, handled: 0,
      acknowledge_clock: startClock('acknowledge', k.priority, at), arrive_clock: null, handle_clock: null, extensions: 0, late_warned: false,
    });
    k.status = 'dispatched';
    k.dispatched = at;
    k.dispatches += 1;
    k.recommended_unit = unit ? unit.id : '';
  }

  nearestUnit(k) {
    let best = null, bestD = Infinity;
    for (const u of this.units) {
      if (u.department !== k.department || u.status !== 'available') continue;
      const d = (u.lat - k.lat) ** 2 + (u.lon - k.lon) ** 2;
      if (d < bestD) { bestD = d; best = u; }
    }
    return best;
  }

  recommended(k) {
    return this.units.filter((u) => u.department === k.department)
      .map((u) => ({ id: u.id, department: u.department, status: u.status, distance_m: Math.round(Math.hypot((u.lat - k.lat) * 111320, (u.lon - k.lon) * 98000)) }))
      .sort((a, b) => a.distance_m - b.distance_m).slice(0, 3)
      .map((u) => ({ ...u, eta_s: Math.round(u.distance_m / (30 / 3.6)) }));
  }

  seed() {
    const now = Date.now();
    // History for the KPIs: closed cases over the past 30 days.
    for (let i = 0; i < 90; i++) {
      const cat = CATEGORIES[Math.floor(this.rand() * CATEGORIES.length)];
      const k = this.makeCase({ category: cat.id, cell: Math.floor(this.rand() * ROWS * COLS), at: now - Math.floor(this.rand() * 29 * 86400e3) - 3 * 3600e3, stage: 'closed' });
      if (this.rand() < 0.15) k.tasks[0].acknowledge_clock.light = 'red';
    }
    // Open cases in each light.
    const red = this.makeCase({ category: 'gas_leak', cell: 12, age: 13 * 60e3 }); // ack limit 10 min: overdue
    red.tasks[0].acknowledge_clock.light = 'red';
    const yellow = this.makeCase({ category: 'waterlogging', cell: 27, age: 13.5 * 60e3 }); // 12.5 of 15 min
    yellow.tasks[0].acknowledge_clock.light = 'yellow';
    this.makeCase({ category: 'exposed_garbage', cell: 35, age: 20 * 60e3, stage: 'acknowledged' });
    this.makeCase({ category: 'noise', cell: 40, age: 5 * 60e3, stage: 'registered' });
    this.makeCase({ category: 'fire_candidate', cell: 20, age: 3 * 60e3, withCamera: true });
    for (const k of this.cases.values()) {
      // A seeded history: one timeline entry per step so far.
      const tl = [];
      const push = (action, at, status) => tl.push({ seq: tl.length + 1, action, at: new Date(at).toISOString(), at_ms: at, actor: 'cityloop', role: 'system', status, detail: {} });
      push('city.case.opened', k.first_event, 'registered');
      if (k.dispatched) push('city.case.dispatched', k.dispatched, 'dispatched');
      if (k.tasks[0] && k.tasks[0].acknowledged) push('city.case.acknowledged', k.tasks[0].acknowledged, 'acknowledged');
      if (k.closed) push('city.case.closed', k.closed, 'closed');
      this.timelines.set(k.id, tl);
    }
  }

  start(incidentEveryMs) {
    this.timers.push(setInterval(() => this.tickSla(), 1000));
    this.timers.push(setInterval(() => this.moveUnits(), 2000));
    this.timers.push(setInterval(() => { for (const res of this.clients) res.write(': heartbeat\n\n'); }, 15000));
    if (incidentEveryMs > 0) this.timers.push(setInterval(() => this.incident({}), incidentEveryMs));
  }

  stop() {
    for (const t of this.timers) clearInterval(t);
    for (const res of this.clients) res.destroy();
    this.clients.clear();
  }

  // A new incident, as the engine would show it: opened, then dispatched.
  incident({ category, cell }) {
    const open = [...this.cases.values()].filter((c) => c.status !== 'closed').map((c) => c.cell);
    const cats = ['waterlogging', 'gas_leak', 'manhole_displaced', 'road_obstacle', 'traffic_congestion', 'exposed_garbage'];
    const cat = category && CAT[category] ? category : cats[Math.floor(this.rand() * cats.length)];
    let idx = Number.isInteger(cell) ? cell : Math.floor(this.rand() * ROWS * COLS);
    for (let i = 0; i < ROWS * COLS && open.includes(idx) && !Number.isInteger(cell); i++) idx = (idx + 7) % (ROWS * COLS);
    const k = this.makeCase({ category: cat, cell: idx, stage: 'registered', withCamera: cat === 'road_obstacle' });
    this.timelines.set(k.id, []);
    this.emit(k, 'city.case.opened', { signals: 1 });
    setTimeout(() => {
      this.dispatch(k, Date.now());
      this.emit(k, 'city.case.dispatched', { department: k.department, unit: k.recommended_unit });
      this.emit(k, 'city.dispatch.order', { department: k.department, recommended_unit: k.recommended_unit, deadline: k.tasks[0].acknowledge_clock.deadline });
    }, 400);
    return k;
  }

  tickSla() {
    const now = Date.now();
    for (const k of this.cases.values()) {
      if (['closed', 'invalid', 'merged', 'suspended'].includes(k.status)) continue;
      const t = k.tasks.filter((x) => x.lead).pop();
      const clocks = t ? [['acknowledge', t.acknowledge_clock], ['arrive', t.arrive_clock], ['handle', t.handle_clock]] : [];
      clocks.push(['verify', k.verify_clock]);
      const running = clocks.find(([, c]) => c && c.started && !c.stopped);
      if (!running) continue;
      const [stage, c] = running;
      if (now >= c.deadline && c.light !== 'red') {
        c.light = 'red';
        this.emit(k, 'city.case.sla_breached', { stage, deadline: c.deadline });
      } else if (now >= c.warn && c.light === 'green') {
        c.light = 'yellow';
        this.emit(k, 'city.case.sla_warning', { stage, deadline: c.deadline });
      }
    }
  }

  moveUnits() {
    const now = Date.now();
    for (const u of this.units) {
      const k = u.case ? this.cases.get(u.case) : null;
      if (k && u.status === 'enroute') {
        u.lat += (k.lat - u.lat) * 0.3;
        u.lon += (k.lon - u.lon) * 0.3;
      } else if (u.status === 'available') {
        u.lat += (this.rand() - 0.5) * 0.0004;
        u.lon += (this.rand() - 0.5) * 0.0004;
      }
      u.lat = round6(u.lat); u.lon = round6(u.lon); u.ts = now;
    }
  }

  // Checks an action against the case's state: null if allowed, else the 409 reason.
  check(k, action, p) {
    const t = k.tasks.filter((x) => x.lead).pop();
    const st = k.status;
    const need = (ok, msg) => (ok ? null : msg || `cannot ${action} a case that is ${st}`);
    switch (action) {
      case 'acknowledge': return need(st === 'dispatched' && t && t.status === 'dispatched');
      case 'enroute': return need(st === 'acknowledged');
      case 'arrive': return need(st === 'acknowledged' || st === 'enroute');
      case 'handled': return need(st === 'onscene');
      case 'verify_pass': case 'verify_fail': return need(st === 'verifying');
      case 'close': return need(st === 'verifying' || st === 'handled');
      case 'return': return need(st === 'dispatched' || st === 'acknowledged');
      case 'reassign': return need(DEPARTMENTS.some((d) => d.id === p.department), `unknown department '${p.department || ''}'`) || need(!['closed', 'invalid', 'merged'].includes(st));
      case 'assist': return need(DEPARTMENTS.some((d) => d.id === p.department), `unknown department '${p.department || ''}'`) || need(!!t);
      case 'extend': return need(/^\d+(ms|s|m|h|d)$/.test(p.duration || ''), `bad duration '${p.duration || ''}'`) || need(!!t);
      case 'defer': return need(!['closed', 'invalid', 'merged', 'deferred'].includes(st));
      case 'suspend': return need(!['closed', 'invalid', 'merged', 'suspended'].includes(st));
      case 'resume': return need(st === 'suspended');
      case 'invalidate': return need(!['closed', 'invalid', 'merged'].includes(st));
      case 'reopen': return need(st === 'closed');
      case 'merge': return need(this.cases.has(p.into) && p.into !== k.id, `no case '${p.into || ''}' to merge into`);
      default: return `unknown action '${action}'`;
    }
  }

  apply(k, action, p, actor) {
    const now = Date.now();
    const t = k.tasks.filter((x) => x.lead).pop();
    const unit = t && (this.units.find((u) => u.id === (t.unit || k.recommended_unit)));
    let type = `city.case.${action}`;
    switch (action) {
      case 'acknowledge':
        t.status = 'acknowledged'; t.acknowledged = now; stopClock(t.acknowledge_clock, now);
        t.unit = k.recommended_unit; t.arrive_clock = startClock('arrive', k.priority, now);
        k.status = 'acknowledged'; type = 'city.case.acknowledged';
        break;
      case 'enroute':
        t.status = 'enroute'; t.enroute = now; k.status = 'enroute';
        if (unit) { unit.status = 'enroute'; unit.case = k.id; }
        break;
      case 'arrive':
        t.status = 'onscene'; t.arrived = now; stopClock(t.arrive_clock, now);
        t.handle_clock = startClock('handle', k.priority, now); k.status = 'onscene'; type = 'city.case.arrived';
        if (unit) { unit.status = 'onscene'; unit.case = k.id; unit.lat = k.lat; unit.lon = k.lon; }
        break;
      case 'handled':
        t.status = 'handled'; t.handled = now; stopClock(t.handle_clock, now); k.handled = now;
        k.status = 'verifying'; k.verify_clock = startClock('verify', k.priority, now);
        if (unit) { unit.status = 'returning'; }
        break;
      case 'verify_pass': case 'close':
        stopClock(k.verify_clock, now); k.verified = now; k.closed = now; k.status = 'closed'; type = 'city.case.closed';
        if (unit) { unit.status = 'available'; unit.case = ''; }
        break;
      case 'verify_fail':
        stopClock(k.verify_clock, now); k.reworks += 1; t.status = 'onscene'; t.handle_clock = startClock('handle', k.priority, now);
        k.status = 'onscene'; type = 'city.case.verified';
        break;
      case 'return':
        for (const c of [t.acknowledge_clock, t.arrive_clock, t.handle_clock]) stopClock(c, now);
        t.status = 'returned'; k.returns += 1; k.status = 'returned'; type = 'city.case.returned';
        break;
      case 'reassign':
        for (const c of [t.acknowledge_clock, t.arrive_clock, t.handle_clock]) stopClock(c, now);
        t.status = 'cancelled'; k.department = p.department; this.dispatch(k, now); type = 'city.case.dispatched';
        break;
      case 'assist':
        k.tasks.push({ department: p.department, lead: false, status: 'dispatched', unit: '', dispatched: now, acknowledged: 0, enroute: 0, arrived: 0, handled: 0, acknowledge_clock: startClock('acknowledge', k.priority, now), arrive_clock: null, handle_clock: null, extensions: 0, late_warned: false });
        type = 'city.case.dispatched';
        break;
      case 'extend': {
        const m = /^(\d+)(ms|s|m|h|d)$/.exec(p.duration);
        const ms = Number(m[1]) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2]];
        for (const c of [t.acknowledge_clock, t.arrive_clock, t.handle_clock]) {
          if (c && !c.stopped) { c.deadline += ms; c.warn += ms; c.limit += ms; c.light = Date.now() >= c.warn ? 'yellow' : 'green'; }
        }
        t.extensions += 1; k.extensions += 1; type = 'city.case.extended';
        break;
      }
      case 'defer': k.deferred = true; k.status = 'deferred'; type = 'city.case.deferred'; break;
      case 'suspend': k.resume_to = k.status; k.status = 'suspended'; k.paused = now; type = 'city.case.suspended'; break;
      case 'resume': k.status = k.resume_to || 'dispatched'; k.paused = 0; type = 'city.case.resumed'; break;
      case 'invalidate': k.status = 'invalid'; k.invalidated = now; type = 'city.case.invalidated'; break;
      case 'reopen': k.status = 'dispatched'; k.reopens += 1; k.closed = 0; this.dispatch(k, now); type = 'city.case.reopened'; break;
      case 'merge': {
        const into = this.cases.get(p.into);
        k.status = 'merged'; k.merged_into = into.id; into.signals.push(...k.signals); into.signal_count = into.signals.length;
        type = 'city.case.merged';
        this.emit(into, 'city.case.merged', { from: k.id }, actor, p.note);
        break;
      }
      default: break;
    }
    this.emit(k, type, { command: action, department: p.department, duration: p.duration, into: p.into }, actor, p.note || '');
  }

  kpi(groupBy, from, to) {
    const rows = new Map();
    const row = (g) => {
      if (!rows.has(g)) rows.set(g, { group: g, c: Object.fromEntries(['accepted', 'registered', 'dispatched', 'due_to_close', 'closed', 'closed_on_time', 'reworked', 'extended', 'reopened', 'deferred', 'dispatches', 'acknowledged_on_time', 'not_returned'].map((n) => [n, 0])), times: { acknowledge: [], arrive: [], handle: [], close: [] } });
      return rows.get(g);
    };
    for (const k of this.cases.values()) {
      if (k.status === 'merged') continue;
      const day = localDay(k.registered || k.first_event);
      if (day < from || day > to) continue;
      const g = groupBy === 'department' || groupBy === 'dept' ? k.department : groupBy === 'district' ? k.district
        : groupBy === 'category' ? k.category : groupBy === 'day' ? day : groupBy === 'cell' || groupBy === 'grid' ? k.grid : 'total';
      const r = row(g).c;
      const tm = row(g).times;
      r.accepted += 1;
      if (k.registered) r.registered += 1;
      if (k.dispatched) { r.dispatched += 1; r.due_to_close += 1; }
      r.dispatches += k.dispatches;
      r.not_returned += Math.max(0, k.dispatches - k.returns);
      r.reworked += k.reworks ? 1 : 0;
      r.extended += k.extensions ? 1 : 0;
      r.deferred += k.deferred ? 1 : 0;
      const t = k.tasks[0];
      if (t && t.acknowledged) {
        if (t.acknowledge_clock && t.acknowledged <= t.acknowledge_clock.deadline && t.acknowledge_clock.light !== 'red') r.acknowledged_on_time += 1;
        tm.acknowledge.push(t.acknowledged - t.dispatched);
      }
      if (t && t.arrived) tm.arrive.push(t.arrived - t.acknowledged);
      if (t && t.handled) tm.handle.push(t.handled - t.arrived);
      if (k.closed) {
        r.closed += 1;
        tm.close.push(k.closed - k.first_event);
        if (!t || !t.handle_clock || t.handled <= t.handle_clock.deadline) r.closed_on_time += 1;
      }
    }
    if (groupBy === 'day') {
      for (let d = Date.parse(`${from}T00:00:00Z`); d <= Date.parse(`${to}T00:00:00Z`); d += 86400e3) row(new Date(d).toISOString().slice(0, 10));
    }
    const out = [...rows.values()].sort((a, b) => String(a.group).localeCompare(String(b.group))).map(({ group, c, times }) => {
      const rates = Object.fromEntries(RATES.map(([n, num, den]) => [n, c[den] ? c[num] / c[den] : null]));
      let sum = 0, wsum = 0;
      for (const [n, w] of Object.entries(WEIGHTS)) {
        if (rates[n] === null) continue;
        sum += w > 0 ? w * rates[n] : -w * (1 - rates[n]);
        wsum += Math.abs(w);
      }
      const tstats = Object.fromEntries(Object.entries(times).map(([n, v]) => {
        const s = [...v].sort((a, b) => a - b);
        return [n, { count: s.length, mean_ms: s.length ? Math.round(s.reduce((x, y) => x + y, 0) / s.length) : null, p90_ms: s.length ? s[Math.min(s.length - 1, Math.ceil(s.length * 0.9) - 1)] : null }];
      }));
      return { group, counts: c, rates, times: tstats, score: wsum ? Math.round((100 * sum / wsum) * 10) / 10 : null };
    });
    if (groupBy === 'total' && !out.length) out.push({ group: 'total', counts: row('total').c, rates: {}, times: {}, score: null });
    return {
      group_by: groupBy, from, to, rows: out,
      formulas: Object.fromEntries(RATES.map(([n, num, den]) => [n, { numerator: num, denominator: den }])),
      definitions: { rate: 'numerator / denominator over the row\'s counts; null when the denominator is 0' },
      weights: WEIGHTS,
    };
  }
}

// ---- HTTP -------------------------------------------------------------------------

function send(res, status, body, headers = {}) {
  const data = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
  res.end(data);
}
function error(res, status, code, message) { send(res, status, { error: { code, message } }); }

function readBody(req) {
  return new Promise((resolve, reject) => {
    let n = 0; const parts = [];
    req.on('data', (d) => { n += d.length; if (n > 1 << 20) { reject(new Error('too large')); req.destroy(); } else parts.push(d); });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function serveStatic(res, urlPath) {
  const rel = urlPath === '/' ? 'index.html' : decodeURIComponent(urlPath.slice(1));
  const file = path.resolve(WEB_ROOT, rel);
  if (!file.startsWith(WEB_ROOT + path.sep)) return error(res, 404, 'not_found', 'no such file');
  fs.readFile(file, (err, data) => {
    if (err) return error(res, 404, 'not_found', `no file ${rel}`);
    res.writeHead(200, { 'Content-Type': MIME[path.extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-cache' });
    res.end(data);
  });
}

function createServer(engine) {
  return http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://mock');
    const p = url.pathname;
    try {
      if (p.startsWith('/__mock/')) return control(engine, req, res, url);
      if (!p.startsWith('/api/')) {
        if (p === '/livez' || p === '/readyz') return send(res, 200, { status: p === '/livez' ? 'ok' : 'ready' });
        if (req.method !== 'GET' && req.method !== 'HEAD') return error(res, 405, 'method_not_allowed', req.method);
        return serveStatic(res, p);
      }
      const auth = /^Bearer (.+)$/.exec(req.headers.authorization || '');
      const who = auth && TOKENS[auth[1]];
      if (!who) return error(res, 401, 'unauthorized', 'missing or unknown bearer token');
      const inScope = (k) => !who.districts.length || who.districts.includes(k.district);
      let m;
      if (req.method === 'GET' && p === '/api/v1/whoami') return send(res, 200, who);
      if (req.method === 'GET' && p === '/api/v1/city') return send(res, 200, engine.city);
      if (req.method === 'GET' && p === '/api/v1/units') return send(res, 200, engine.units);
      if (req.method === 'GET' && p === '/api/v1/cases') {
        const status = url.searchParams.get('status');
        const limit = Math.min(Number(url.searchParams.get('limit')) || 100, 1000);
        const cursor = url.searchParams.get('cursor') || '';
        const all = [...engine.cases.values()].filter(inScope)
          .filter((k) => !status || (status === 'open' ? !['closed', 'invalid', 'merged'].includes(k.status) : k.status === status))
          .sort((a, b) => a.id.localeCompare(b.id)).filter((k) => k.id > cursor);
        const page = all.slice(0, limit).map(({ signals, ...rest }) => rest);
        return send(res, 200, { cases: page, next_cursor: all.length > limit ? page[page.length - 1].id : null });
      }
      if (req.method === 'GET' && (m = /^\/api\/v1\/cases\/([^/]+)$/.exec(p))) {
        const k = engine.cases.get(decodeURIComponent(m[1]));
        if (!k || !inScope(k)) return error(res, 404, 'not_found', 'no such case');
        const snaps = k.signals.map((s) => s.attributes && s.attributes.snapshot).filter(Boolean);
        return send(res, 200, { case: k, timeline: engine.timelines.get(k.id) || [], snapshots: snaps, recommended_units: engine.recommended(k) });
      }
      if (req.method === 'POST' && (m = /^\/api\/v1\/cases\/([^/]+)\/actions$/.exec(p))) {
        const k = engine.cases.get(decodeURIComponent(m[1]));
        if (!k || !inScope(k)) return error(res, 404, 'not_found', 'no such case');
        let body;
        try { body = JSON.parse(await readBody(req)); } catch { return error(res, 400, 'bad_request', 'body is not JSON'); }
        const action = body.action;
        if (!OPERATOR_ACTIONS.has(action) && !SUPERVISOR_ACTIONS.has(action)) return error(res, 400, 'bad_request', `unknown action '${action}'`);
        const allowed = who.role === 'admin' || who.role === 'supervisor' || (who.role === 'operator' && OPERATOR_ACTIONS.has(action));
        if (!allowed) return error(res, 403, 'forbidden', `a ${who.role} may not ${action}`);
        const why = engine.check(k, action, body);
        if (why) return error(res, 409, 'invalid_transition', why);
        const actor = { name: who.name, role: who.role };
        if (engine.sync) {
          engine.apply(k, action, body, actor);
          return send(res, 200, { status: 'applied', case: k });
        }
        setTimeout(() => {
          const again = engine.check(k, action, body);
          if (again) {
            engine.emit(k, 'city.command.rejected', { action, reason: again }, actor);
          } else engine.apply(k, action, body, actor);
        }, engine.applyDelayMs);
        return send(res, 202, { status: 'pending', command_id: `c-${Date.now()}` });
      }
      if (req.method === 'GET' && p === '/api/v1/kpi') {
        const today = localDay(Date.now());
        return send(res, 200, engine.kpi(url.searchParams.get('group_by') || 'department', url.searchParams.get('from') || today, url.searchParams.get('to') || today));
      }
      if (req.method === 'GET' && (m = /^\/api\/v1\/snapshots\/([^/]+)$/.exec(p))) {
        const img = engine.snapshots.get(decodeURIComponent(m[1]));
        if (!img) return error(res, 404, 'not_found', 'no such snapshot');
        res.writeHead(200, { 'Content-Type': 'image/png', 'Cache-Control': 'private, max-age=86400' });
        return res.end(img);
      }
      if (req.method === 'GET' && p === '/api/v1/stream') return stream(engine, req, res);
      return error(res, 404, 'not_found', `no route ${req.method} ${p}`);
    } catch (e) {
      return error(res, 500, 'internal', e.message);
    }
  });
}

function stream(engine, req, res) {
  const last = req.headers['last-event-id'] || '';
  engine.connections.push({ last_event_id: last, at: Date.now() });
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
  res.write('retry: 1000\n: connected\n\n');
  if (last && /^\d+$/.test(last)) {
    for (const e of engine.events) if (e.seq > Number(last)) res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${e.json}\n\n`);
  }
  engine.clients.add(res);
  req.on('close', () => engine.clients.delete(res));
}

async function control(engine, req, res, url) {
  const p = url.pathname;
  if (req.method === 'POST' && p === '/__mock/incident') {
    const cell = url.searchParams.has('cell') ? Number(url.searchParams.get('cell')) : undefined;
    const k = engine.incident({ category: url.searchParams.get('category') || undefined, cell });
    return send(res, 200, { id: k.id, cell: k.cell, category: k.category });
  }
  if (req.method === 'POST' && p === '/__mock/drop-streams') {
    const n = engine.clients.size;
    for (const c of engine.clients) c.destroy();
    engine.clients.clear();
    return send(res, 200, { dropped: n });
  }
  if (req.method === 'GET' && p === '/__mock/state') {
    const open = [...engine.cases.values()].filter((k) => !['closed', 'invalid', 'merged'].includes(k.status)).length;
    return send(res, 200, { stream_connections: engine.connections, last_seq: engine.seq, open, clients: engine.clients.size });
  }
  return error(res, 404, 'not_found', p);
}

// Starts the mock; resolves {url, port, engine, close()}.
function startMock({ port = 0, host = '127.0.0.1', incidentEveryMs = 0, sync = false, seed = 7 } = {}) {
  const engine = new MockEngine({ seed, sync });
  const server = createServer(engine);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      engine.start(incidentEveryMs);
      const actual = server.address().port;
      resolve({
        url: `http://${host}:${actual}`, port: actual, engine, server,
        close: () => new Promise((r) => { engine.stop(); server.close(() => r()); server.closeAllConnections && server.closeAllConnections(); }),
      });
    });
  });
}

module.exports = { startMock, TOKENS };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name, def) => { const i = args.indexOf(name); return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : def; };
  startMock({
    port: Number(opt('--port', 8090)), host: opt('--host', '127.0.0.1'),
    incidentEveryMs: Number(opt('--incident-every', 0)) * 1000, sync: args.includes('--sync'), seed: Number(opt('--seed', 7)),
  }).then((m) => {
    console.log(`mock cityloop API on ${m.url} (tokens: ${Object.keys(TOKENS).join(', ')})`);
    const stop = () => m.close().then(() => process.exit(0));
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  }, (e) => { console.error(`mock: ${e.message}`); process.exit(1); });
}

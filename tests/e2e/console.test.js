#!/usr/bin/env node
// Browser test of the web console (console/web) with playwright-core driving
// Debian's headless Chromium.
//
//   node tests/e2e/console.test.js           against the real engine: starts
//        build/bin/cityloop run --embedded-kafka --simulate with a test config
//        (deploy/cityloop.example.yaml with known tokens in its api: section)
//   node tests/e2e/console.test.js --mock    against tests/e2e/mock-api.js
//        (--mock-sync: the mock answers actions 200 "applied" instead of 202)
//
// It logs in, watches a new incident arrive live (SSE) in the queue and on the
// map, opens it, acknowledges it, sees the timeline gain the acknowledgement
// and the status / SLA stage change, sees a disallowed action's error, checks
// the KPI dashboard, the language switch, a viewer's (absent) actions and
// logout; with --mock also a stream drop and its Last-Event-ID resume.
// Screenshots and logs go to $CITYLOOP_ARTIFACTS (default build/artifacts/e2e/).
// Waits on conditions only. Exit 0 when every check passed, 1 otherwise.
//
// Options: --mock, --bin PATH (default build/bin/cityloop, or $CITYLOOP_BIN),
// --config PATH (base config, default deploy/cityloop.example.yaml),
// --headed (needs a display), --keep (keep the engine's temp dir).
// Environment: CITYLOOP_ARTIFACTS, CHROMIUM_PATH (default /usr/bin/chromium),
// CITYLOOP_E2E_INCIDENT_TIMEOUT_S (real engine: how long to wait for a live
// incident, default 300).
'use strict';

const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const ROOT = path.resolve(__dirname, '../..');
const args = process.argv.slice(2);
const flag = (n) => args.includes(n);
const opt = (n, def) => { const i = args.indexOf(n); return i >= 0 && args[i + 1] ? args[i + 1] : def; };

const MOCK = flag('--mock') || flag('--mock-sync');
const ARTIFACTS = path.resolve(ROOT, process.env.CITYLOOP_ARTIFACTS || 'build/artifacts/e2e');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const BIN = path.resolve(ROOT, opt('--bin', process.env.CITYLOOP_BIN || 'build/bin/cityloop'));
const BASE_CONFIG = path.resolve(ROOT, opt('--config', 'deploy/cityloop.example.yaml'));
const INCIDENT_TIMEOUT_MS = MOCK ? 15000 : Number(process.env.CITYLOOP_E2E_INCIDENT_TIMEOUT_S || 300) * 1000;
const STEP_TIMEOUT_MS = MOCK ? 10000 : 60000; // one UI condition (the real engine goes through Kafka)

let playwright;
try {
  playwright = require('playwright-core');
} catch {
  console.error('console.test: playwright-core is not installed: run scripts/install-web-deps.sh (npm ci)');
  process.exit(1);
}

// ---- the target: mock or engine ----------------------------------------------------

async function startMockTarget() {
  const { startMock } = require('./mock-api.js');
  // --mock: actions answer 202 and apply a moment later (as through Kafka); --mock-sync: 200 with the case.
  const mock = await startMock({ port: 0, sync: flag('--mock-sync') });
  return {
    kind: 'mock',
    url: mock.url,
    operatorToken: 'op-token',
    viewerToken: 'viewer-token',
    // A new incident now (the engine's simulator does this by itself).
    incident: async () => (await (await fetch(`${mock.url}/__mock/incident`, { method: 'POST' })).json()).id,
    dropStreams: async () => (await fetch(`${mock.url}/__mock/drop-streams`, { method: 'POST' })).json(),
    state: async () => (await fetch(`${mock.url}/__mock/state`)).json(),
    stop: () => mock.close(),
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

// The base config with its api: section (the last top-level one, or any)
// replaced by one with our listen address and tokens.
function testConfig(base, port, tokens) {
  const text = fs.readFileSync(base, 'utf8');
  const api = [
    'api:',
    `  listen: "127.0.0.1:${port}"`,
    '  tokens:',
    ...tokens.map((t) => `    - {name: ${t.name}, sha256: "${sha256(t.token)}", role: ${t.role}, districts: []}`),
    '',
  ].join('\n');
  const re = /^api:[^\n]*\n(?:(?:[ \t]+[^\n]*|[ \t]*)(?:\n|$))*/m;
  return re.test(text) ? text.replace(re, `${api}\n`) : `${text.replace(/\n*$/, '\n')}\n${api}`;
}

async function startEngineTarget() {
  if (!fs.existsSync(BIN)) throw new Error(`no engine binary at ${BIN}: build it first (make build), or run with --mock`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cityloop-e2e-'));
  const port = await freePort();
  const operatorToken = crypto.randomBytes(24).toString('hex');
  const viewerToken = crypto.randomBytes(24).toString('hex');
  const cfgPath = path.join(tmp, 'cityloop-e2e.yaml');
  fs.writeFileSync(cfgPath, testConfig(BASE_CONFIG, port, [
    { name: 'e2e-operator', token: operatorToken, role: 'operator' },
    { name: 'e2e-viewer', token: viewerToken, role: 'viewer' },
  ]));
  fs.copyFileSync(cfgPath, path.join(ARTIFACTS, 'cityloop-e2e.yaml'));
  const logPath = path.join(ARTIFACTS, 'engine.log');
  const log = fs.createWriteStream(logPath);
  const argv = ['--log-format', 'json', 'run', '--config', cfgPath, '--embedded-kafka', '--simulate',
    '--listen', `127.0.0.1:${port}`, '--store', path.join(tmp, 'store'), '--bootstrap-file', path.join(tmp, 'bootstrap')];
  log.write(`$ ${BIN} ${argv.join(' ')}\n`);
  const child = spawn(BIN, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  let exited = null;
  const exitedP = new Promise((resolve) => child.on('exit', (code, sig) => { exited = { code, sig }; resolve(); }));
  const url = `http://127.0.0.1:${port}`;
  const tail = () => {
    try { return fs.readFileSync(logPath, 'utf8').split('\n').slice(-25).join('\n'); } catch { return ''; }
  };
  const stop = async () => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL'); }, 20000);
      await exitedP;
      clearTimeout(timer);
    }
    log.end();
    if (!flag('--keep')) fs.rmSync(tmp, { recursive: true, force: true });
  };
  // Ready: /readyz 200 (store open, partitions assigned), within 120 s.
  const deadline = Date.now() + 120000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`the engine exited (${exited.code ?? exited.sig}) before it was ready; log tail:\n${tail()}`);
    }
    try {
      const r = await fetch(`${url}/readyz`);
      if (r.status === 200) break;
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the engine was not ready on ${url}/readyz within 120 s; log tail:\n${tail()}`);
    }
    await new Promise((r) => setTimeout(r, 250)); // poll interval of the readiness probe
  }
  // The console API and static files must be there.
  const who = await fetch(`${url}/api/v1/whoami`, { headers: { Authorization: `Bearer ${operatorToken}` } });
  const index = await fetch(`${url}/`);
  const problems = [];
  if (who.status !== 200) problems.push(`GET /api/v1/whoami with the operator token answered ${who.status} (want 200: api.tokens not read, or the API is missing)`);
  const ct = index.headers.get('content-type') || '';
  if (index.status !== 200 || !ct.includes('text/html')) problems.push(`GET / answered ${index.status} ${ct} (want 200 text/html: the console is not served)`);
  const js = await fetch(`${url}/app.js`);
  if (js.status !== 200 || !/javascript/.test(js.headers.get('content-type') || '')) {
    problems.push(`GET /app.js answered ${js.status} ${js.headers.get('content-type')} (want 200 text/javascript: ES modules need a JavaScript MIME type)`);
  }
  if (problems.length) {
    await stop();
    throw new Error(`the engine does not serve the console yet:\n  - ${problems.join('\n  - ')}`);
  }
  return { kind: 'engine', url, operatorToken, viewerToken, stop, incident: null, child };
}

// ---- the checks ------------------------------------------------------------------------

const results = [];
let shotN = 0;
async function shot(page, name) {
  shotN += 1;
  const file = path.join(ARTIFACTS, `${String(shotN).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok ${results.length} - ${name} (${Date.now() - t0} ms)`);
    return true;
  } catch (e) {
    results.push({ name, ok: false, error: e });
    console.log(`not ok ${results.length} - ${name}\n  ${String(e && e.message || e).split('\n').join('\n  ')}`);
    return false;
  }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

const tid = (id) => `[data-testid="${id}"]`;

async function login(page, url, token) {
  await page.goto(`${url}/`);
  await page.locator(tid('login-token')).fill(token);
  await page.locator(tid('login-submit')).click();
  await page.locator(tid('app')).waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  console.log(`console e2e: ${MOCK ? 'mock API' : `engine ${BIN}`}; artifacts in ${ARTIFACTS}`);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (scripts/install-deps.sh), or set CHROMIUM_PATH`);

  const target = MOCK ? await startMockTarget() : await startEngineTarget();
  const browser = await playwright.chromium.launch({
    executablePath: CHROMIUM,
    headless: !flag('--headed'),
    args: [...(process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
  });
  const consoleLog = fs.createWriteStream(path.join(ARTIFACTS, 'browser-console.log'));
  const pageErrors = [];
  const watch = (page, who) => {
    page.on('console', (m) => {
      consoleLog.write(`[${who}] console.${m.type()}: ${m.text()}\n`);
      // A 4xx answer shows as "Failed to load resource": the 409 check makes one on purpose.
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) pageErrors.push(`${who}: ${m.text()}`);
    });
    page.on('pageerror', (e) => { consoleLog.write(`[${who}] pageerror: ${e.stack || e.message}\n`); pageErrors.push(`${who}: ${e.message}`); });
  };

  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, locale: 'zh-CN' });
    page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    watch(page, 'operator');
    const city = await (await fetch(`${target.url}/api/v1/city`, { headers: { Authorization: `Bearer ${target.operatorToken}` } })).json();

    const chain = [];
    const must = async (name, fn) => {
      if (chain.includes(false)) {
        results.push({ name, ok: false, error: new Error('skipped: an earlier step failed') });
        console.log(`not ok ${results.length} - ${name} # skipped: an earlier step failed`);
        return false;
      }
      const ok = await step(name, fn);
      chain.push(ok);
      return ok;
    };

    await must('a bad token is refused on the login screen', async () => {
      await page.goto(`${target.url}/`);
      await page.locator(tid('login')).waitFor({ state: 'visible' });
      await page.locator(tid('login-token')).fill('not-a-token');
      await page.locator(tid('login-submit')).click();
      await page.locator(tid('login-error')).waitFor({ state: 'visible' });
      await shot(page, 'login-refused');
    });

    await must('the operator logs in; whoami, map and live stream are up', async () => {
      await page.locator(tid('login-token')).fill(target.operatorToken);
      await page.locator(tid('login-submit')).click();
      await page.locator(tid('app')).waitFor({ state: 'visible' });
      await page.locator(`${tid('whoami-role')}[data-role="operator"]`).waitFor();
      await page.locator(`${tid('stream-status')}[data-state="live"]`).waitFor();
      const stored = await page.evaluate(() => sessionStorage.getItem('cityloop.token'));
      assert(stored === target.operatorToken, 'the token is not kept in sessionStorage');
      const cells = await page.locator('[data-testid^="map-cell-"]').count();
      assert(cells === city.grid.cells.length, `the map draws ${cells} cells, the city has ${city.grid.cells.length}`);
      const labels = await page.locator('[data-testid^="map-district-"]').count();
      assert(labels === city.districts.length, `the map labels ${labels} districts, the city has ${city.districts.length}`);
      await shot(page, 'logged-in');
    });

    let caseId = null;
    await must('a new incident appears live (SSE) in the queue and on the map', async () => {
      const before = await page.$$eval('[data-testid^="queue-row-"]', (rows) => rows.map((r) => r.dataset.id));
      if (target.incident) await target.incident();
      const handle = await page.waitForFunction((known) => {
        const rows = [...document.querySelectorAll('[data-testid^="queue-row-"]')];
        const row = rows.find((r) => !known.includes(r.dataset.id) && r.dataset.via === 'stream' && r.dataset.status === 'dispatched');
        return row ? row.dataset.id : null;
      }, before, { timeout: INCIDENT_TIMEOUT_MS, polling: 250 });
      caseId = await handle.jsonValue();
      await page.locator(tid(`map-case-${caseId}`)).waitFor({ state: 'attached' });
      const cell = await page.locator('[data-testid^="map-cell-"][data-count]:not([data-count="0"])').count();
      assert(cell > 0, 'no map cell is coloured by its open cases');
      const events = Number(await page.evaluate(() => document.body.dataset.events || 0));
      assert(events > 0, 'no stream event was counted');
      await page.locator(`[data-testid="feed-item"][data-case="${caseId}"]`).first().waitFor({ state: 'attached' });
      await shot(page, 'live-incident');
      console.log(`  live case ${caseId}`);
    });

    await must('the queue is ordered by urgency (red first, then priority)', async () => {
      const rows = await page.$$eval('[data-testid^="queue-row-"]', (rs) => rs.map((r) => ({ id: r.dataset.id, light: r.dataset.light, priority: r.dataset.priority })));
      const rank = { urgent: 0, high: 1, normal: 2, low: 3 };
      const key = (r) => [r.light === 'red' ? 0 : 1, rank[r.priority] ?? 9];
      for (let i = 1; i < rows.length; i++) {
        const [a, b] = [key(rows[i - 1]), key(rows[i])];
        assert(a[0] < b[0] || (a[0] === b[0] && a[1] <= b[1]), `row ${i} (${rows[i].id} ${rows[i].light}/${rows[i].priority}) comes after ${rows[i - 1].id} (${rows[i - 1].light}/${rows[i - 1].priority})`);
      }
      const countdowns = await page.$$eval('[data-testid^="queue-row-"][data-stage]:not([data-stage=""]) td.countdown', (tds) => tds.map((t) => t.textContent));
      assert(countdowns.every((c) => /\d\d:\d\d/.test(c)), `a running clock has no countdown: ${countdowns.join(', ')}`);
    });

    let before = null;
    await must('the case opens (by keyboard) with its timeline, SLA countdown and actions', async () => {
      await page.locator(tid(`queue-open-${caseId}`)).focus();
      await page.keyboard.press('Enter');
      await page.locator(tid('case-view')).waitFor({ state: 'visible' });
      await page.locator(`${tid('case-id')}:text-is("${caseId}")`).waitFor();
      await page.locator(tid('timeline-item')).first().waitFor();
      await page.locator(`${tid('case-status')}[data-status="dispatched"]`).waitFor();
      await page.locator(`${tid('case-countdown')}[data-stage="acknowledge"]`).waitFor();
      await page.locator(tid('action-acknowledge')).waitFor();
      for (const a of ['suspend', 'merge']) assert(await page.locator(tid(`action-${a}`)).count() === 0, `an operator sees the supervisor action ${a}`);
      before = {
        light: await page.locator(tid('case-light')).getAttribute('data-light'),
        timeline: await page.locator(tid('timeline-item')).count(),
      };
      await shot(page, 'case-open');
    });

    await must('acknowledging it adds the acknowledgement to the timeline and changes status and SLA stage', async () => {
      await page.locator(tid('action-note')).fill('e2e: 已签收');
      await page.locator(tid('action-acknowledge')).click();
      const result = page.locator(tid('action-result'));
      await page.waitForFunction(() => {
        const el = document.querySelector('[data-testid="action-result"]');
        return el && ['applied', 'pending', 'error'].includes(el.dataset.state);
      });
      if ((await result.getAttribute('data-state')) === 'error') throw new Error(`the acknowledgement failed: ${await result.textContent()}`);
      await page.locator(`${tid('timeline-item')}[data-action="city.case.acknowledged"]`).waitFor();
      await page.waitForFunction(() => {
        const st = document.querySelector('[data-testid="case-status"]');
        return st && !['dispatched', 'registered', 'detected'].includes(st.dataset.status);
      });
      await page.waitForFunction(() => {
        const cd = document.querySelector('[data-testid="case-countdown"]');
        return cd && cd.dataset.stage !== 'acknowledge';
      });
      const status = await page.locator(tid('case-status')).getAttribute('data-status');
      const stage = await page.locator(tid('case-countdown')).getAttribute('data-stage');
      const light = await page.locator(tid('case-light')).getAttribute('data-light');
      const timeline = await page.locator(tid('timeline-item')).count();
      assert(timeline > before.timeline, 'the timeline did not grow');
      await page.locator(`${tid(`queue-row-${caseId}`)}[data-status="${status}"]`).waitFor();
      await shot(page, 'acknowledged');
      console.log(`  ${caseId}: dispatched/acknowledge/${before.light} -> ${status}/${stage || 'no clock'}/${light}`);
    });

    await must('a disallowed action is refused and its error shown; Escape closes the case and focus returns', async () => {
      await page.locator(tid('action-acknowledge')).click();
      await page.locator(`${tid('action-result')}[data-state="error"]`).waitFor();
      const text = await page.locator(tid('action-result')).textContent();
      assert(text && text.length > 3, 'the error says nothing');
      await shot(page, 'action-refused');
      await page.keyboard.press('Escape');
      await page.locator(tid('case-view')).waitFor({ state: 'hidden' });
      await page.waitForFunction((id) => document.activeElement && document.activeElement.dataset.testid === `queue-open-${id}`, caseId);
    });

    // Independent checks from here on.
    await step('the KPI dashboard draws its charts for each period and grouping', async () => {
      await page.locator(tid('nav-kpi')).click();
      await page.locator(`${tid('view-kpi')}[data-state="loaded"]`).waitFor();
      for (const period of ['today', '7d', '30d']) {
        await page.locator(tid(`kpi-period-${period}`)).click();
        await page.locator(`${tid(`kpi-period-${period}`)}[aria-pressed="true"]`).waitFor();
        await page.locator(`${tid('view-kpi')}[data-state="loaded"]`).waitFor();
        await page.locator(`${tid('kpi-score-chart')} svg, ${tid('kpi-score-chart')} ${tid('kpi-empty')}`).first().waitFor();
      }
      for (const g of ['district', 'category', 'department']) {
        await page.locator(tid(`kpi-group-${g}`)).click();
        await page.locator(`${tid(`kpi-group-${g}`)}[aria-pressed="true"]`).waitFor();
        await page.locator(`${tid('view-kpi')}[data-state="loaded"]`).waitFor();
      }
      const bars = await page.locator(`${tid('kpi-score-chart')} rect.bar`).count();
      assert(bars > 0 || (await page.locator(`${tid('kpi-score-chart')} ${tid('kpi-empty')}`).count()) > 0, 'no score bars and no "no data"');
      await page.locator(`${tid('kpi-rate-chart')} svg, ${tid('kpi-rate-chart')} ${tid('kpi-empty')}`).first().waitFor();
      await shot(page, 'kpi');
    });

    await step('the language switch turns the labels to English and back', async () => {
      await page.locator(tid('nav-ops')).click();
      await page.locator(tid('view-ops')).waitFor({ state: 'visible' });
      await page.locator(`${tid('nav-ops')}:text-is("运行监测")`).waitFor();
      await page.locator(tid('lang-toggle')).click();
      await page.locator(`${tid('nav-ops')}:text-is("Operations")`).waitFor();
      await page.locator('#queue-title:text-is("Cases")').waitFor();
      await page.locator('#map-title:text-is("City map")').waitFor();
      await shot(page, 'english');
      await page.locator(tid('lang-toggle')).click();
      await page.locator('#queue-title:text-is("案件")').waitFor();
    });

    if (target.dropStreams) {
      await step('after a dropped stream the console resumes with Last-Event-ID and keeps updating', async () => {
        const connects = Number(await page.evaluate(() => document.body.dataset.streamConnects || 0));
        const lastId = await page.evaluate(() => document.body.dataset.lastEventId || '');
        assert(lastId, 'no event id seen before the drop');
        await target.dropStreams();
        await page.waitForFunction((n) => Number(document.body.dataset.streamConnects || 0) > n, connects);
        await page.locator(`${tid('stream-status')}[data-state="live"]`).waitFor();
        const state = await target.state();
        const last = state.stream_connections[state.stream_connections.length - 1];
        assert(last.last_event_id === lastId, `reconnected with Last-Event-ID '${last.last_event_id}', want '${lastId}'`);
        const id = await target.incident();
        await page.locator(`${tid(`queue-row-${id}`)}[data-via="stream"]`).waitFor();
      });
    }

    await step('a viewer sees the cases but no action buttons', async () => {
      const ctx = await browser.newContext({ viewport: { width: 1600, height: 900 } });
      const vp = await ctx.newPage();
      vp.setDefaultTimeout(STEP_TIMEOUT_MS);
      watch(vp, 'viewer');
      try {
        await login(vp, target.url, target.viewerToken);
        await vp.locator(`${tid('whoami-role')}[data-role="viewer"]`).waitFor();
        const row = vp.locator('[data-testid^="queue-open-"]').first();
        await row.waitFor();
        await row.click();
        await vp.locator(tid('timeline-item')).first().waitFor();
        await vp.locator(tid('no-actions')).waitFor();
        assert(await vp.locator('[data-testid^="action-"][data-action]').count() === 0, 'a viewer has action buttons');
        await shot(vp, 'viewer');
      } finally {
        await ctx.close();
      }
    });

    await step('logout forgets the token and shows the login screen', async () => {
      await page.locator(tid('logout')).click();
      await page.locator(tid('login')).waitFor({ state: 'visible' });
      const stored = await page.evaluate(() => sessionStorage.getItem('cityloop.token'));
      assert(stored === null, 'the token is still in sessionStorage');
      await page.reload();
      await page.locator(tid('login')).waitFor({ state: 'visible' });
    });

    await step('no script errors in the browser', async () => {
      assert(pageErrors.length === 0, `errors:\n${pageErrors.join('\n')}`);
    });
  } catch (e) {
    results.push({ name: 'test run', ok: false, error: e });
    console.log(`not ok ${results.length} - test run\n  ${e.message}`);
  } finally {
    if (page && results.some((r) => !r.ok)) {
      try { await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png') }); } catch { /* page gone */ }
    }
    await browser.close();
    consoleLog.end();
    await target.stop();
  }
}

main().then(() => {
  const failed = results.filter((r) => !r.ok);
  console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
  if (failed.length) {
    console.error(`console e2e FAILED: ${failed.map((f) => f.name).join('; ')} (screenshots and logs in ${ARTIFACTS})`);
    process.exit(1);
  }
}, (e) => {
  console.error(`console e2e FAILED: ${e.message}`);
  console.log(`${results.filter((r) => r.ok).length} passed, ${results.filter((r) => !r.ok).length + 1} failed`);
  process.exit(1);
});

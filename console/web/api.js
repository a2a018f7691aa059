// The console's only way to the engine: the REST API with a bearer token,
// and the Server-Sent Events stream read with fetch() (EventSource cannot
// send an Authorization header), resuming with Last-Event-ID after a drop.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
  }
}

export class Api {
  constructor(token, onUnauthorized) {
    this.token = token;
    this.onUnauthorized = onUnauthorized || (() => {});
  }

  headers(extra) {
    return { Authorization: `Bearer ${this.token}`, ...extra };
  }

  // JSON request. Resolves {status, body} for 2xx; throws ApiError otherwise
  // (status 0 for a network failure). A 401 also calls onUnauthorized.
  async request(method, path, body) {
    let res;
    try {
      res = await fetch(path, {
        method,
        headers: this.headers(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        body: body !== undefined ? JSON.stringify(body) : undefined,
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network', e.message);
    }
    let json = null;
    const text = await res.text();
    if (text) {
      try { json = JSON.parse(text); } catch { json = null; }
    }
    if (res.status === 401) this.onUnauthorized();
    if (!res.ok) {
      const err = json && json.error ? json.error : {};
      throw new ApiError(res.status, err.code, err.message || text.slice(0, 200));
    }
    return { status: res.status, body: json };
  }

  get(path) { return this.request('GET', path).then((r) => r.body); }
  post(path, body) { return this.request('POST', path, body); }

  // Bytes of an authenticated resource (camera snapshots) as an object URL.
  async blobUrl(path) {
    const res = await fetch(path, { headers: this.headers(), cache: 'force-cache' });
    if (res.status === 401) this.onUnauthorized();
    if (!res.ok) throw new ApiError(res.status, '', `HTTP ${res.status}`);
    return URL.createObjectURL(await res.blob());
  }
}

// Resolves after ms, or at once when signal aborts.
function pause(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

// SSE over fetch. onEvent({id, type, data}) for each event; onState('connecting'
// | 'live' | 'down'); onConnected(resumed) after each successful (re)connect.
export class EventStream {
  constructor(api, url, { onEvent, onState, onConnected }) {
    this.api = api;
    this.url = url;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.onConnected = onConnected || (() => {});
    this.lastEventId = '';
    this.retryMs = 1000;
    this.stopped = true;
    this.connects = 0;
    this.idleMs = 90000; // no byte (not even a heartbeat) for this long: reconnect
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.stopper = new AbortController();
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.stopper) this.stopper.abort();
    if (this.conn) this.conn.abort();
  }

  async loop() {
    let backoff = this.retryMs;
    while (!this.stopped) {
      this.onState('connecting');
      this.conn = new AbortController();
      let opened = false;
      try {
        const headers = this.api.headers({ Accept: 'text/event-stream' });
        if (this.lastEventId) headers['Last-Event-ID'] = this.lastEventId;
        const res = await fetch(this.url, { headers, cache: 'no-store', signal: this.conn.signal });
        if (res.status === 401) {
          this.api.onUnauthorized();
          this.stopped = true;
          break;
        }
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        opened = true;
        backoff = this.retryMs;
        this.onState('live');
        this.onConnected(this.connects++ > 0);
        await this.read(res.body);
      } catch (e) {
        if (this.stopped) break;
      }
      if (this.stopped) break;
      this.onState('down');
      // A stream that was open reconnects at once (then backs off).
      await pause(opened ? this.retryMs : backoff + Math.random() * 500, this.stopper.signal);
      if (!opened) backoff = Math.min(backoff * 2, 15000);
    }
  }

  async read(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let ev = { id: null, type: '', data: [] };
    let idle = null;
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => this.conn.abort(), this.idleMs);
    };
    arm();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        arm();
        buf += decoder.decode(value, { stream: true });
        for (;;) {
          const m = /\r\n|\r|\n/.exec(buf);
          if (!m) break;
          // A lone '\r' at the end may be half of "\r\n": wait for more.
          if (m[0] === '\r' && m.index === buf.length - 1) break;
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          ev = this.line(line, ev);
        }
      }
    } finally {
      clearTimeout(idle);
    }
  }

  // One SSE line (https://html.spec.whatwg.org/multipage/server-sent-events.html).
  line(line, ev) {
    if (line === '') {
      if (ev.data.length) {
        this.onEvent({ id: ev.id ?? this.lastEventId, type: ev.type || 'message', data: ev.data.join('\n') });
      }
      return { id: null, type: '', data: [] };
    }
    if (line[0] === ':') return ev; // comment / heartbeat
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') ev.data.push(value);
    else if (field === 'event') ev.type = value;
    else if (field === 'id' && !value.includes('\0')) {
      ev.id = value;
      this.lastEventId = value;
    } else if (field === 'retry' && /^\d+$/.test(value)) this.retryMs = Math.max(250, Number(value));
    return ev;
  }
}

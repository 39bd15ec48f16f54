// The orcaops dashboard: a small single-page app over the same REST API the CLI uses.
// No framework: h() builds DOM nodes (text is always a text node, never markup), pages
// are functions of a context that closes their watches when the page is left, and live
// data comes from watches served as server-sent events, batched per animation frame.
import { Dag, GROUP_MIN, svg, graph, criticalPath, duration as nodeDuration } from '/ui/assets/dag.js';

const B = '/apis/orcaops.dev/v1alpha1';
const KINDS = {
  jobs: { one: 'job', title: 'Jobs', ns: true, phases: ['Pending', 'Running', 'Succeeded', 'Failed', 'TimedOut', 'Cancelled'] },
  workflows: { one: 'workflow', title: 'Workflows', ns: true, phases: ['Pending', 'Running', 'WaitingApproval', 'Succeeded', 'Failed', 'Cancelled', 'Suspended'] },
  sandboxes: { one: 'sandbox', title: 'Sandboxes', ns: true, phases: ['Pending', 'Starting', 'Ready', 'Stopping', 'Stopped', 'Failed', 'Expired'] },
  workspaces: { one: 'workspace', title: 'Workspaces', ns: false },
  policies: { one: 'policy', title: 'Policies', ns: false },
};
const TONE = {
  Succeeded: 'ok', Ready: 'ok', Running: 'run', Starting: 'run', Stopping: 'run', Pending: 'idle',
  Failed: 'bad', TimedOut: 'bad', Cancelled: 'off', Skipped: 'off', Stopped: 'off', Suspended: 'off',
  WaitingApproval: 'wait', Expired: 'wait', Enforce: 'bad', Warn: 'wait', Audit: 'idle', Warning: 'wait', Normal: 'idle',
};
const FINISHED = ['Succeeded', 'Failed', 'TimedOut', 'Cancelled'];
const S = { session: {}, ns: 'default', live: null };
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

// ---------------------------------------------------------------- DOM and formatting

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat(9)) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
const pill = (p, attrs) => h('span', { class: 'pill t-' + (TONE[p] || 'idle'), ...attrs }, p || '—');
const tone = (text, t) => h('span', { class: 'pill t-' + t }, text);
const td = (...k) => h('td', {}, ...k), num = (...k) => h('td', { class: 'num' }, ...k), sum = (...k) => h('td', { class: 'sum' }, ...k);
const rowh = (...k) => h('th', { scope: 'row' }, ...k), muted = (...k) => h('p', { class: 'muted' }, ...k);
const ts = (s) => (s ? Date.parse(s) : NaN);
const st = (o) => (o && o.status) || {};
const md = (o) => (o && o.metadata) || {};

function dur(ms) {
  if (!(ms >= 0)) return '—';
  if (ms < 1000) return Math.round(ms) + ' ms';
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m ${Math.floor(s % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}
const span = (a, b) => (a ? (b ? ts(b) : Date.now()) - ts(a) : NaN);
function rel(t) {
  const d = Date.now() - t, a = Math.abs(d) / 1000;
  const v = a < 60 ? Math.floor(a) + 's' : a < 3600 ? Math.floor(a / 60) + 'm' : a < 86400 ? Math.floor(a / 3600) + 'h' : Math.floor(a / 86400) + 'd';
  return d >= 0 ? v + ' ago' : 'in ' + v;
}
function when(s) {
  const t = ts(s);
  return isNaN(t) ? '—' : h('time', { datetime: s, title: new Date(t).toLocaleString(), 'data-rel': '' }, rel(t));
}
function countdown(s) {
  const d = ts(s) - Date.now();
  if (isNaN(d)) return 'never';
  const a = Math.abs(d) / 1000, t = a >= 3600 ? `${Math.floor(a / 3600)}h ${Math.floor((a % 3600) / 60)}m` : a >= 60 ? `${Math.floor(a / 60)}m ${Math.floor(a % 60)}s` : Math.floor(a) + 's';
  return d >= 0 ? 'in ' + t : t + ' ago';
}
function bytes(n) {
  if (n == null) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < 4) (n /= 1024), i++;
  return (i ? n.toFixed(1) : n) + ' ' + u[i];
}
// A readable YAML rendering of JSON (for specs and their differences).
function yaml(v, ind = '') {
  if (Array.isArray(v) && v.length) return v.map((x) => ind + '- ' + yaml(x, ind + '  ').trimStart()).join('\n');
  if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length)
    return Object.entries(v).map(([k, x]) => ind + k + ':' + (x && typeof x === 'object' && Object.keys(x).length ? '\n' + yaml(x, ind + '  ') : ' ' + yaml(x, ind + '  ').trimStart())).join('\n');
  if (typeof v !== 'string') return ind + JSON.stringify(v);
  if (v.includes('\n')) return ind + '|' + (v.endsWith('\n') ? '' : '-') + v.replace(/\n$/, '').split('\n').map((l) => '\n' + ind + l).join('');
  return ind + (/^[\w./@+-][\w ./@:+,=-]*$/.test(v) && !/^(true|false|null|yes|no|on|off|[-+.\d][\d.e+-]*)$/i.test(v) && !/(: |\s$)/.test(v) ? v : JSON.stringify(v));
}
setInterval(() => {
  for (const e of document.querySelectorAll('time[data-rel]')) e.textContent = rel(Date.parse(e.dateTime));
}, 10000);
// A duration still growing: the ticker below moves it every second.
const since = (s) => (isNaN(ts(s)) ? '—' : h('span', { 'data-since': ts(s) }, dur(Date.now() - ts(s))));
// A deadline: "in 4m 10s", then "12s ago".
const until = (s) => h('span', { 'data-until': s }, countdown(s));
setInterval(() => {
  for (const e of document.querySelectorAll('[data-since]')) e.textContent = dur(Date.now() - +e.dataset.since);
  for (const e of document.querySelectorAll('[data-until]')) e.textContent = countdown(e.dataset.until);
}, 1000);
// Re-renders el only when what it shows changed, so open details and focus survive updates.
function keep(el, what, fn) {
  const k = JSON.stringify(what);
  if (el._k !== k) (el._k = k), el.replaceChildren(...[fn()].flat());
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}
function toLogin() {
  location.href = '/ui/login?next=' + enc(location.pathname + location.search);
}
async function api(path, { method = 'GET', body, text } = {}) {
  const headers = { Accept: text ? 'text/plain' : 'application/json' };
  if (method !== 'GET') headers['X-Orcaops-Csrf'] = '1';
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  if (r.status === 401) {
    toLogin();
    throw new ApiError(401, 'not signed in');
  }
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try {
      const j = await r.json();
      if (j.message) msg = j.message;
    } catch { /* not a Status */ }
    throw new ApiError(r.status, msg);
  }
  return text ? r.text() : r.json();
}
const unavailable = (e) => e.code === 404 || e.code === 501;
const errBox = (e, what) => h('p', { class: unavailable(e) ? 'note' : 'error', role: unavailable(e) ? null : 'alert' },
  unavailable(e) ? `${what || 'This'} is not available on this server.` : e.message);

function listUrl(plural, ns, params = {}) {
  const u = new URLSearchParams();
  for (const k in params) if (params[k]) u.set(k, params[k]);
  const q = u.toString();
  return (KINDS[plural] && !KINDS[plural].ns || !ns || ns === '*' ? `${B}/${plural}` : `${B}/namespaces/${enc(ns)}/${plural}`) + (q ? '?' + q : '');
}
const objUrl = (plural, ns, name) => `${B}/namespaces/${enc(ns)}/${plural}/${enc(name)}`;

function toast(msg, bad) {
  const t = $('toast');
  t.className = 'toast show' + (bad ? ' bad' : '');
  t.textContent = msg;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.className = 'toast'), 5000);
}
// A button that POSTs: disabled while it runs, the answer's message (or error) shown.
async function act(btn, url, body, done) {
  btn.disabled = true;
  try {
    const r = await api(url, { method: 'POST', body });
    toast(done || (r && r.message) || 'Done');
  } catch (e) {
    toast(e.message, true);
  } finally {
    btn.disabled = false;
  }
}

// ---------------------------------------------------------------- live data

function setLive(ok) {
  if (S.live === ok) return;
  S.live = ok;
  const el = $('live');
  el.className = 'live ' + (ok ? 'on' : 'off');
  el.textContent = ok ? 'Live' : 'Reconnecting…';
}

// A watch over one list URL as server-sent events. Objects are kept by namespace/name;
// changes are handed to onFlush once per animation frame. On a drop it resumes from the
// last resourceVersion seen; on 410 Gone it starts over and drops what was not re-sent.
class Live {
  constructor(url, onFlush, onError) {
    Object.assign(this, { url, onFlush, onError, map: new Map(), changed: new Set(), rv: null, fails: 0, loaded: false });
  }
  open() {
    if (this.stopped) return;
    const u = new URL(this.url, location.href), p = u.searchParams;
    p.set('watch', 'true');
    p.set('allowWatchBookmarks', 'true');
    if (this.rv) p.set('resourceVersion', this.rv);
    else p.set('sendInitialEvents', 'true'), (this.seen = new Set());
    const es = (this.es = new EventSource(u));
    let got = false;
    clearTimeout(this.slow);
    // A server that sends no end-of-initial-events bookmark: consider it loaded anyway.
    this.slow = setTimeout(() => this.loaded || this.synced(), 2500);
    es.onmessage = (e) => {
      if (!got) (got = true), (this.fails = 0), setLive(true);
      let ev;
      try { ev = JSON.parse(e.data); } catch { return; }
      this.event(ev);
    };
    es.onerror = () => {
      es.close();
      if (this.stopped) return;
      this.fails++;
      setLive(false);
      if (!got && (this.fails === 1 || this.fails === 4)) this.probe();
      this.timer = setTimeout(() => this.open(), Math.min(15000, 300 * 2 ** this.fails));
    };
  }
  // The watch did not open: a plain list request tells why (401, 403, 404...).
  async probe() {
    const u = new URL(this.url, location.href);
    u.searchParams.set('limit', '1');
    try {
      await api(u.pathname + u.search);
    } catch (e) {
      if (e.code === 401 || e.code === 403 || e.code === 404 || e.code === 501) {
        this.stop();
        setLive(true);
        this.onError && this.onError(e);
      }
    }
  }
  event(ev) {
    const o = ev.object || {}, m = md(o);
    if (ev.type === 'ERROR') {
      this.es.close();
      if (o.code === 410) this.rv = null;
      this.timer = setTimeout(() => this.open(), 300);
      return;
    }
    if (m.resourceVersion) this.rv = m.resourceVersion;
    if (ev.type === 'BOOKMARK') {
      if (m.annotations && m.annotations['k8s.io/initial-events-end']) this.synced();
      return;
    }
    const k = (m.namespace || '') + '/' + m.name;
    if (ev.type === 'DELETED') this.map.delete(k);
    else this.map.set(k, o), this.seen && this.seen.add(k);
    this.changed.add(k);
    this.kick();
  }
  synced() {
    if (this.seen) for (const k of this.map.keys()) if (!this.seen.has(k)) this.map.delete(k), this.changed.add(k);
    this.seen = null;
    this.loaded = true;
    this.kick(true);
  }
  // One flush per frame; a big list (each flush lays out every row) at most 4 a second.
  kick(force) {
    this.force ||= force;
    if (this.pending) return;
    this.pending = true;
    const run = () => {
      this.pending = false;
      if (this.stopped) return;
      const c = this.changed;
      this.changed = new Set();
      this.last = performance.now();
      if (c.size || this.force) (this.force = false), this.onFlush(c, this);
    };
    const wait = this.loaded && this.map.size > 300 ? (this.last || 0) + 250 - performance.now() : 0;
    document.hidden ? setTimeout(run, 250) : setTimeout(() => requestAnimationFrame(run), Math.max(0, wait));
  }
  stop() {
    this.stopped = true;
    this.es && this.es.close();
    clearTimeout(this.timer);
    clearTimeout(this.slow);
  }
}

// ---------------------------------------------------------------- pages and routing

let page = null;
class Ctx {
  constructor() {
    this.q = new URLSearchParams(location.search);
    this.subs = [];
    this.main = $('main');
    this.main.replaceChildren();
    delete document.body.dataset.ready;
  }
  on(f) { this.subs.push(f); }
  close() { this.closed = true; this.subs.forEach((f) => f()); }
  ready() { if (!this.closed) document.body.dataset.ready = '1'; }
  live(url, onFlush, onError) {
    const l = new Live(url, (c, live) => this.closed || onFlush(c, live), (e) => {
      if (this.closed) return;
      if (onError) return onError(e), this.ready();
      // Nothing of this page can be shown: keep the title and say why.
      for (const el of this.main.querySelectorAll('section, .actions, .summary, .head .pill')) el.hidden = true;
      this.main.querySelector('.head').after(errBox(e));
      this.ready();
    });
    this.on(() => l.stop());
    l.open();
    return l;
  }
  every(ms, f) {
    const i = setInterval(f, ms);
    this.on(() => clearInterval(i));
  }
}

const ROUTES = [
  [/^\/ui\/?$/, overviewPage],
  [/^\/ui\/(jobs|workflows|sandboxes|workspaces|policies)\/?$/, listPage],
  [/^\/ui\/jobs\/([^/]+)\/([^/]+)\/?$/, jobPage],
  [/^\/ui\/workflows\/([^/]+)\/([^/]+)\/?$/, workflowPage],
  [/^\/ui\/workflows\/([^/]+)\/([^/]+)\/compare\/?$/, compareWorkflowPage],
  [/^\/ui\/sandboxes\/([^/]+)\/([^/]+)\/?$/, sandboxPage],
  [/^\/ui\/compare\/([^/]+)\/([^/]+)\/?$/, comparePage],
  [/^\/ui\/audit\/?$/, auditPage],
];

function go(url, replace) {
  history[replace ? 'replaceState' : 'pushState'](null, '', url);
  render();
}
function withQuery(changes) {
  const q = new URLSearchParams(location.search);
  for (const k in changes) changes[k] ? q.set(k, changes[k]) : q.delete(k);
  const s = q.toString();
  return location.pathname + (s ? '?' + s : '');
}

function render() {
  if (page) page.close();
  const ctx = (page = new Ctx());
  const ns = ctx.q.get('ns');
  if (ns) S.ns = ns;
  syncChrome();
  const path = location.pathname;
  for (const [re, fn] of ROUTES) {
    const m = path.match(re);
    if (m) {
      fn(ctx, ...m.slice(1).map(decodeURIComponent));
      return;
    }
  }
  title('Not found');
  ctx.main.append(h('h1', { tabindex: -1 }, 'Not found'), h('p', {}, 'No dashboard page at ', h('code', {}, path), '. ', h('a', { href: '/ui/' }, 'Go to the overview')));
  ctx.ready();
}

function title(t, ...rest) {
  document.title = t + ' · orcaops';
  return h('div', { class: 'head' }, h('h1', { tabindex: -1 }, t), ...rest);
}
function focusHead(ctx) {
  const h1 = ctx.main.querySelector('h1');
  if (h1 && render.moved) h1.focus({ preventScroll: true });
}
const crumbs = (...parts) => h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, parts.map((p, i) => [i ? ' / ' : '', p]));
const section = (name, ...kids) => h('section', { class: 'card', 'aria-label': name }, h('h2', {}, name), ...kids);
const facts = (pairs) => h('dl', { class: 'facts' }, pairs.filter((p) => p && p[1] != null && p[1] !== '').map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
function table(cols, rows, attrs) {
  const t = h('table', { class: 'tbl', ...attrs }, h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col' }, c)))), h('tbody', {}, rows));
  alignHeads(t);
  return h('div', { class: 'tablewrap' }, t);
}
// A column of numbers is right-aligned, head and every cell (whatever a row holds: a
// pill, a dash); every other column is left-aligned, its head too.
function alignHeads(t) {
  const rows = [...t.tBodies[0].rows];
  [...t.tHead.rows[0].cells].forEach((c, i) => {
    const n = rows.some((r) => r.cells[i] && r.cells[i].classList.contains('num'));
    c.classList.toggle('num', n);
    if (n) for (const r of rows) r.cells[i] && r.cells[i].classList.add('num');
  });
}
const nsLink = (path) => path + (S.ns ? '?ns=' + enc(S.ns) : '');

// The header and the nav: who is signed in, the workspace picker, where we are.
function syncChrome() {
  const sel = $('ws');
  if (sel.value !== S.ns) {
    if (![...sel.options].some((o) => o.value === S.ns)) sel.append(h('option', { value: S.ns }, S.ns));
    sel.value = S.ns;
  }
  const here = location.pathname.replace(/\/$/, '') || '/ui';
  for (const a of document.querySelectorAll('#nav a')) {
    const base = a.dataset.path;
    a.href = nsLink(base);
    const on = base === '/ui/' ? here === '/ui' : here === base || here.startsWith(base + '/') || (base === '/ui/jobs' && here.startsWith('/ui/compare'));
    on ? a.setAttribute('aria-current', 'page') : a.removeAttribute('aria-current');
  }
}

async function fillWorkspaces() {
  const sel = $('ws'), s = S.session;
  const names = new Set(s.workspace ? [s.workspace] : ['default']);
  if (s.admin) {
    try {
      for (const w of (await api(`${B}/workspaces`)).items || []) names.add(w.metadata.name);
    } catch { /* the picker keeps what it has */ }
  }
  names.add(S.ns);
  const opts = [...names].filter((n) => n !== '*').sort().map((n) => h('option', { value: n }, n));
  if (s.admin) opts.unshift(h('option', { value: '*' }, 'All workspaces'));
  sel.replaceChildren(...opts);
  sel.value = S.ns;
  sel.disabled = !s.admin && opts.length < 2;
}

// ---------------------------------------------------------------- lists

const phaseCell = (p) => h('td', { 'data-testid': 'phase' }, pill(p));
const nameCell = (plural, o) => {
  const m = md(o);
  const href = KINDS[plural].ns ? `/ui/${plural}/${enc(m.namespace)}/${enc(m.name)}` : plural === 'workspaces' ? `/ui/?ns=${enc(m.name)}` : null;
  return rowh(href ? h('a', { href }, m.name) : m.name);
};
const COLUMNS = {
  jobs: [
    ['Phase', (o) => phaseCell(st(o).phase || 'Pending'), '9em'],
    ['Runs', (o) => num(st(o).totalRuns || 0), '4.5em'],
    ['Attempt', (o) => num(st(o).attempt || '—'), '5.5em'],
    ['Summary', (o) => sum(st(o).summary || '')],
    ['Anomaly', (o) => td((st(o).anomalies || []).slice(0, 1).map((a) => tone(a.kind, 'wait'))), '10em'],
  ],
  workflows: [
    ['Phase', (o) => phaseCell(st(o).phase || 'Pending'), '10.5em'],
    ['Progress', (o) => td(progress(st(o).progress)), '9em'],
    ['Run', (o) => num(st(o).run || '—'), '4em'],
    ['Summary', (o) => sum(st(o).summary || (o.spec && o.spec.schedule ? 'scheduled: ' + o.spec.schedule : ''))],
  ],
  sandboxes: [
    ['Phase', (o) => phaseCell(st(o).phase || 'Pending'), '8.5em'],
    ['Template', (o) => td((o.spec && o.spec.templateRef) || '—'), '10em'],
    ['Expires', (o) => td(st(o).expiresAt ? when(st(o).expiresAt) : 'never'), '8em'],
    ['Message', (o) => sum(st(o).message || '')],
  ],
  workspaces: [
    ['Usage', (o) => sum(st(o).summary || '—')],
    ['Members', (o) => num(st(o).members || 0), '6em'],
    ['Keys', (o) => num(st(o).keys || 0), '4em'],
    ['Waiting', (o) => num(st(o).waiting || 0), '5em'],
  ],
  policies: [
    ['Mode', (o) => td(pill((o.spec && o.spec.mode) || 'Enforce')), '7.5em'],
    ['Workspaces', (o) => td(((o.spec && o.spec.workspaces) || []).join(', ') || 'all'), '10em'],
    ['Refused', (o) => num((st(o).violations || {}).refused || 0), '5.5em'],
    ['Warned', (o) => num((st(o).violations || {}).warned || 0), '5.5em'],
    ['Audited', (o) => num((st(o).violations || {}).audited || 0), '5.5em'],
    ['By rule', (o) => sum(Object.entries((st(o).violations || {}).byRule || {}).map(([k, v]) => `${k}=${v}`).join(', '))],
  ],
};
function progress(p) {
  const m = /^(\d+)\/(\d+)$/.exec(p || '');
  if (!m) return p || '—';
  return h('span', { class: 'progress' }, h('meter', { min: 0, max: +m[2] || 1, value: +m[1], 'aria-label': 'nodes finished' }), ' ', p);
}

function listPage(ctx, plural) {
  const K = KINDS[plural], q = ctx.q;
  const phase = q.get('phase') || '', label = q.get('label') || '', sort = q.get('sort') || 'name';
  let filter = q.get('q') || '';
  const all = K.ns && S.ns === '*';
  const count = h('span', { class: 'muted', 'aria-live': 'polite' });
  const where = K.ns ? (all ? 'in every workspace' : `in workspace ${S.ns}`) : 'cluster-wide';
  ctx.main.append(title(K.title, count));
  const apply = (changes) => go(withQuery(changes));
  const nameInput = h('input', { type: 'search', id: 'f-name', value: filter, placeholder: 'name contains…', 'data-filter': '' });
  const labelInput = h('input', { type: 'text', id: 'f-label', value: label, placeholder: 'key=value', spellcheck: 'false' });
  const form = h('form', { class: 'filters', role: 'search', onsubmit: (e) => (e.preventDefault(), apply({ label: labelInput.value.trim(), q: nameInput.value.trim() })) },
    h('label', { for: 'f-name' }, 'Name'), nameInput,
    h('label', { for: 'f-label' }, 'Label'), labelInput,
    K.phases && [h('label', { for: 'f-phase' }, 'Phase'), h('select', { id: 'f-phase', onchange: (e) => apply({ phase: e.target.value }) },
      h('option', { value: '' }, 'Any'), K.phases.map((p) => h('option', { value: p, selected: p === phase }, p)))],
    h('button', { class: 'btn', type: 'submit' }, 'Filter'),
    (phase || label || filter) && h('a', { href: location.pathname + (S.ns ? '?ns=' + enc(S.ns) : '') }, 'Clear'));
  nameInput.addEventListener('input', () => {
    filter = nameInput.value.trim().toLowerCase();
    history.replaceState(null, '', withQuery({ q: nameInput.value.trim() }));
    for (const tr of rows.values()) tr.hidden = !tr.dataset.name.includes(filter);
  });
  filter = filter.toLowerCase();
  const sortBtn = (key, text) => h('button', { class: 'sort', type: 'button', onclick: () => apply({ sort: key === 'name' ? '' : key }) }, text, sort === key ? ' ▾' : '');
  const cols = [h('span', {}, sortBtn('name', 'Name')), all && 'Workspace', ...COLUMNS[plural].map((c) => c[0]), sortBtn('age', 'Age')];
  const tbody = h('tbody');
  const empty = h('p', { class: 'empty', hidden: true });
  ctx.main.append(form, h('div', { class: 'listwrap' }, h('table', { class: 'tbl list' },
    h('caption', { class: 'sr' }, `${K.title} ${where}`),
    h('colgroup', {}, h('col', { style: 'width:24%' }), all && h('col', { style: 'width:9em' }), COLUMNS[plural].map((c) => h('col', { style: c[2] ? 'width:' + c[2] : null })), h('col', { style: 'width:7em' })),
    h('thead', {}, h('tr', {}, cols.filter(Boolean).map((c) => h('th', { scope: 'col', 'aria-sort': c.textContent && c.textContent.startsWith(sort === 'age' ? 'Age' : 'Name') ? (sort === 'age' ? 'descending' : 'ascending') : null }, c)))),
    tbody)), empty);
  const extra = plural === 'policies' ? h('div') : null;
  if (extra) ctx.main.append(extra);
  const rows = new Map();
  const rowOf = (o) => {
    const m = md(o);
    const tr = h('tr', { 'data-testid': `row-${K.one}-${K.ns ? m.namespace + '-' : ''}${m.name}`, 'data-name': m.name.toLowerCase() },
      nameCell(plural, o), all && td(m.namespace), COLUMNS[plural].map((c) => c[1](o)), td(when(m.creationTimestamp)));
    tr.hidden = !!filter && !tr.dataset.name.includes(filter);
    return tr;
  };
  const order = (a, b) => sort === 'age' ? ts(md(b.o).creationTimestamp) - ts(md(a.o).creationTimestamp) || a.k.localeCompare(b.k) : a.k.localeCompare(b.k);
  const params = { labelSelector: label, fieldSelector: phase && 'status.phase=' + phase };
  const flush = (changed, live) => {
    let added = false;
    for (const k of changed) {
      const o = live.map.get(k), old = rows.get(k);
      if (!o) {
        if (old) old.remove(), rows.delete(k);
        continue;
      }
      const tr = rowOf(o);
      if (old) patchRow(old, tr);
      else (added = true), rows.set(k, tr);
    }
    if (added) {
      const sorted = [...live.map.keys()].filter((k) => rows.has(k)).map((k) => ({ k: md(live.map.get(k)).name + '\n' + k, o: live.map.get(k), tr: rows.get(k) })).sort(order);
      tbody.append(...sorted.map((x) => x.tr));
      alignHeads(tbody.parentNode);
    }
    const n = live.map.size;
    count.textContent = `${n} ${where}${phase ? ', phase ' + phase : ''}${label ? ', label ' + label : ''}`;
    empty.hidden = n > 0 || !live.loaded;
    empty.textContent = phase || label ? `No ${K.title.toLowerCase()} match these filters.` : `No ${K.title.toLowerCase()} ${where} yet.`;
    if (extra) findings(extra, live.map);
    if (live.loaded) ctx.ready();
  };
  // A member may read their own Workspace but not list them all.
  if (plural === 'workspaces' && !S.session.admin && S.session.workspace) {
    const one = { map: new Map(), loaded: true }, w = S.session.workspace;
    api(`${B}/workspaces/${enc(w)}`).then((o) => one.map.set('/' + w, o), (e) => ctx.main.append(errBox(e))).then(() => flush(new Set(['/' + w]), one));
  } else ctx.live(listUrl(plural, S.ns, params), flush);
  focusHead(ctx);
}

// Moves into old the cells of tr that differ, so an update restyles only what changed.
function patchRow(old, tr) {
  const a = [...old.children], b = [...tr.children];
  b.forEach((cell, i) => a[i] ? a[i].textContent === cell.textContent || a[i].replaceWith(cell) : old.append(cell));
}

// The newest findings of every policy, merged.
function findings(box, map) {
  const all = [];
  for (const p of map.values()) for (const f of (st(p).violations || {}).recent || []) all.push({ ...f, policy: md(p).name });
  all.sort((a, b) => ts(b.lastSeen) - ts(a.lastSeen));
  box.replaceChildren(section('Recent findings', all.length
    ? table(['Policy', 'Rule', 'Object', 'Action', 'Count', 'Last seen', 'Door', 'Message'], all.slice(0, 100).map((f) => h('tr', {},
      td(f.policy), td(f.rule), td(f.object), td(tone(f.action, f.action === 'refused' || f.action === 'blocked' ? 'bad' : f.action === 'warned' ? 'wait' : 'idle')),
      num(f.count), td(when(f.lastSeen)), td(f.door), sum(f.field ? f.field + ': ' : '', f.message))))
    : muted('No policy has found anything yet.')));
}

// ---------------------------------------------------------------- overview

function overviewPage(ctx) {
  const all = S.ns === '*';
  const root = h('div', { 'data-testid': 'overview', class: 'overview' });
  ctx.main.append(title('Overview', h('span', { class: 'muted' }, all ? 'every workspace' : 'workspace ' + S.ns)), root);
  const box = (name, cls) => {
    const body = h('div', {}, muted('Loading…'));
    root.append(h('section', { class: 'card ' + (cls || ''), 'aria-label': name }, h('h2', {}, name), body));
    return body;
  };
  const counts = { jobs: box('Jobs', 'count'), workflows: box('Workflows', 'count'), sandboxes: box('Sandboxes', 'count') };
  const approvals = box('Waiting for approval'), expiring = box('Expiring within the hour'), pools = box('Warm pools');
  const recent = box('Recent runs', 'wide'), anomalies = box('Anomalies', 'wide');
  let waiting = 6;
  const done = () => --waiting || ctx.ready();
  const lists = {};
  for (const plural of ['jobs', 'workflows', 'sandboxes']) {
    let first = true;
    ctx.live(listUrl(plural, S.ns), (c, live) => {
      lists[plural] = live.map;
      const by = {};
      for (const o of live.map.values()) by[st(o).phase || 'Pending'] = (by[st(o).phase || 'Pending'] || 0) + 1;
      keep(counts[plural], [live.map.size, by], () => [h('p', { class: 'big' }, h('a', { href: nsLink('/ui/' + plural), 'aria-label': `${live.map.size} ${KINDS[plural].title.toLowerCase()}` }, live.map.size)),
        h('ul', { class: 'phases' }, KINDS[plural].phases.filter((p) => by[p]).map((p) => h('li', {}, h('a', { href: `/ui/${plural}?ns=${enc(S.ns)}&phase=${p}`, class: 'pill t-' + (TONE[p] || 'idle') }, `${p} ${by[p]}`))))]);
      if (plural === 'workflows') approvalsBox(approvals, live.map);
      if (plural === 'sandboxes') expiringBox(expiring, live.map);
      if (first && live.loaded) (first = false), done();
    }, (e) => (counts[plural].replaceChildren(errBox(e)), done()));
  }
  ctx.every(30000, () => lists.sandboxes && expiringBox(expiring, lists.sandboxes));
  const runsUrl = (extra) => (all ? `${B}/runs?` : `${B}/namespaces/${enc(S.ns)}/runs?`) + extra;
  api(runsUrl('limit=20')).then((r) => recent.replaceChildren(runsTable(r.items || [], all)), (e) => recent.replaceChildren(errBox(e, 'Run search'))).finally(done);
  api(runsUrl('anomalous=true&limit=20')).then((r) => {
    const rows = [];
    for (const run of r.items || []) for (const a of run.anomalies || []) rows.push(h('tr', {}, rowh(h('a', { href: `/ui/jobs/${enc(run.namespace)}/${enc(run.name)}?run=${run.run}` }, run.name, ' #', run.run)),
      td(tone(a.kind, 'wait')), sum(a.message), td(when(run.completionTime))));
    anomalies.replaceChildren(rows.length ? table(['Run', 'Anomaly', 'What', 'Ended'], rows) : muted('No anomalous runs.'));
  }, (e) => anomalies.replaceChildren(errBox(e, 'Anomaly detection'))).finally(done);
  focusHead(ctx);
  api(listUrl('sandboxtemplates', S.ns)).then((r) => {
    const items = (r.items || []).filter((t) => t.spec && t.spec.warmPool);
    pools.replaceChildren(items.length ? h('ul', { class: 'plain' }, items.map((t) => {
      const p = st(t).pool;
      return h('li', {}, h('b', {}, md(t).name), all ? h('span', { class: 'muted' }, ' in ', md(t).namespace) : '', ': ',
        p ? [h('meter', { min: 0, max: p.desired || 1, value: p.ready, 'aria-hidden': 'true' }), ` ${p.ready} ready of ${p.desired}`, h('div', { class: 'muted small' }, `${p.starting} starting · ${p.claimed || 0} claimed · ${p.missed || 0} missed`)]
          : h('span', { class: 'muted' }, 'pool status not available'));
    })) : muted('No template keeps a warm pool.'));
  }, (e) => pools.replaceChildren(errBox(e, 'Warm-pool status'))).finally(done);
}

function approvalsBox(box, map) {
  const waiting = [];
  for (const w of map.values()) for (const n of st(w).nodes || []) if (n.phase === 'WaitingApproval') waiting.push([md(w).namespace, md(w).name, n.name, n.message]);
  keep(box, waiting, () => waiting.length ? h('ul', { class: 'plain' }, waiting.map(([ns, wf, node, msg]) =>
    h('li', {}, h('a', { href: `/ui/workflows/${enc(ns)}/${enc(wf)}` }, wf, ' → ', node), msg ? h('span', { class: 'muted' }, ' ', msg) : null))) : muted('Nothing waits for approval.'));
}
function expiringBox(box, map) {
  const soon = [...map.values()].filter((o) => { const d = ts(st(o).expiresAt) - Date.now(); return d < 3600e3 && d > -60e3 && st(o).phase !== 'Expired'; })
    .sort((a, b) => ts(st(a).expiresAt) - ts(st(b).expiresAt));
  keep(box, soon.map((o) => [md(o).namespace, md(o).name, st(o).expiresAt, st(o).expiryReason]), () => soon.length ? h('ul', { class: 'plain' }, soon.map((o) => h('li', {}, h('a', { href: `/ui/sandboxes/${enc(md(o).namespace)}/${enc(md(o).name)}` }, md(o).name), ' ',
    h('span', { class: 'muted' }, until(st(o).expiresAt), st(o).expiryReason ? ` (${st(o).expiryReason})` : '')))) : muted('None within the hour.'));
}
function runsTable(items, showNs) {
  if (!items.length) return muted('No runs recorded yet.');
  return table(['Job', showNs && 'Workspace', 'Run', 'Phase', 'Started', 'Duration', 'Summary'].filter(Boolean), items.map((r) => h('tr', {},
    rowh(h('a', { href: `/ui/jobs/${enc(r.namespace)}/${enc(r.name)}?run=${r.run}` }, r.name)), showNs && td(r.namespace),
    num(r.run), td(pill(r.phase)), td(when(r.startTime)), num(dur(span(r.startTime, r.completionTime))), sum(r.summary))));
}

// ---------------------------------------------------------------- one object, live

function watchOne(ctx, plural, ns, name, onObj) {
  return ctx.live(listUrl(plural, ns, { fieldSelector: 'metadata.name=' + name }), (c, live) => {
    if (live.loaded || live.map.size) onObj(live.map.get(ns + '/' + name) || null, live.loaded);
  });
}
function eventsBox(box, ns, kind, name) {
  return api(`/api/v1/namespaces/${enc(ns)}/events?fieldSelector=involvedObject.kind=${kind},involvedObject.name=${enc(name)}`).then((r) => {
    const items = (r.items || []).sort((a, b) => ts(b.lastTimestamp) - ts(a.lastTimestamp));
    box.replaceChildren(items.length ? table(['Last seen', 'Type', 'Reason', 'Message', 'Count'], items.slice(0, 50).map((e) => h('tr', {},
      td(when(e.lastTimestamp)), td(pill(e.type)), td(e.reason), sum(e.message), num(e.count))))
      : muted('No events.'));
  }, (e) => box.replaceChildren(errBox(e, 'Events')));
}
// The object of a detail page is missing (text), or back (null): hide or show the page.
function gone(ctx, text) {
  let note = ctx.main.querySelector('.gone');
  for (const el of ctx.main.querySelectorAll('section, .actions, .summary, .head .pill, .facts')) el.hidden = !!text;
  if (text && !note) ctx.main.querySelector('.head').after((note = h('p', { class: 'note gone', role: 'status' })));
  if (note) (note.hidden = !text), (note.textContent = text || '');
  if (text) ctx.ready();
}
const specBox = (spec) => h('details', { class: 'spec' }, h('summary', {}, 'Show the spec'), h('pre', {}, yaml(spec || {})));

// ---------------------------------------------------------------- job

function jobPage(ctx, ns, name) {
  const base = objUrl('jobs', ns, name);
  const phaseEl = h('span', { 'data-testid': 'job-phase', class: 'pill' }, '…');
  const cancel = h('button', { class: 'btn danger', type: 'button', 'data-testid': 'cancel', onclick: () => act(cancel, base + '/cancel', undefined, 'Cancel requested') }, 'Cancel');
  const rerun = h('button', { class: 'btn', type: 'button', 'data-testid': 'rerun', onclick: () => act(rerun, base + '/rerun', undefined, 'Rerun requested') }, 'Rerun');
  const summary = h('p', { class: 'summary' }), info = h('div'), steps = h('div'), arts = h('div'), usage = h('div'), hist = h('div'), events = h('div'), spec = h('div');
  const logs = new Logs(ctx, base);
  ctx.main.append(crumbs(h('a', { href: `/ui/jobs?ns=${enc(ns)}` }, 'Jobs'), ns), title(name, phaseEl, h('div', { class: 'actions' }, cancel, rerun)), summary, info,
    section('Steps', steps), section('Log', logs.el), section('Artifacts', arts), section('Usage and anomalies', usage), section('History', hist), section('Events', events), section('Spec', spec));
  focusHead(ctx);
  let job = null, runs = [], lastKey = null, loaded = false, synced = false, fetched = false;
  const sel = +ctx.q.get('run') || 0;
  const show = () => {
    const s = st(job), current = s.run || (runs[0] && runs[0].run) || 0, run = sel || current;
    const rec = runs.find((r) => r.run === run) || {};
    const mine = job && run === s.run;
    const phase = mine ? s.phase || 'Pending' : rec.phase || (job ? 'Pending' : runs.length ? 'Deleted' : 'Not found');
    const missing = loaded && !job && !runs.length;
    for (const el of ctx.main.querySelectorAll('section, .actions')) el.hidden = missing;
    phaseEl.textContent = phase;
    phaseEl.className = 'pill t-' + (TONE[phase] || 'idle');
    cancel.disabled = !job || FINISHED.includes(s.phase);
    rerun.disabled = !job;
    summary.textContent = (mine ? s.summary : rec.summary) || '';
    const lbl = md(job).labels || {}, wf = lbl['orcaops.dev/workflow'];
    const running = mine && !FINISHED.includes(s.phase);
    keep(info, [ns, run, current, s.totalRuns, runs.length, mine && s.attempt, rec.attempts, mine ? [s.startTime, s.completionTime, s.runTrigger] : rec.run, !!job, loaded, lbl], () => facts([
      ['Workspace', ns],
      ['Image', job ? job.spec.image : rec.context && rec.context.image],
      ['Run', run ? `${run}${sel && sel !== current ? ` (latest is ${current})` : ''} of ${s.totalRuns || runs.length}` : 'none yet'],
      ['Attempt', mine ? s.attempt : rec.attempts],
      ['Started', when(mine ? s.startTime : rec.startTime)],
      ['Duration', running ? since(s.startTime) : dur(mine ? span(s.startTime, s.completionTime) : span(rec.startTime, rec.completionTime))],
      ['Trigger', rec.context && rec.context.trigger],
      wf && ['Workflow', h('a', { href: `/ui/workflows/${enc(ns)}/${enc(wf)}` }, wf, ' run ', lbl['orcaops.dev/workflow-run'], ', node ', lbl['orcaops.dev/node'])],
      !job && loaded && ['Note', runs.length ? 'This job no longer exists; its run records remain.' : `There is no job ${ns}/${name}, and no run records of one.`],
    ]));
    const stepList = (mine ? s.steps : rec.steps) || [];
    const names = ((job && job.spec.steps) || stepList).map((x) => x.name);
    keep(steps, [names, stepList, running], () => names.length ? table(['Step', 'Exit code', 'Duration', 'Started', 'Errors'], names.map((n) => {
      const x = stepList.find((y) => y.name === n) || {};
      return h('tr', {}, rowh(n), num(x.exitCode != null ? tone(String(x.exitCode), x.exitCode ? 'bad' : 'ok') : x.startTime ? pill('Running') : '—'),
        num(x.durationMs != null ? dur(x.durationMs) : x.startTime && x.exitCode == null && running ? since(x.startTime) : '—'),
        td(when(x.startTime)), sum((x.errors || []).map((e) => h('div', { class: 'errline' }, `line ${e.line}: ${e.text}`))));
    })) : muted('No steps.'));
    const list = (mine ? s.artifacts : rec.artifacts) || [];
    keep(arts, [run, list], () => list.length ? table(['Artifact', 'Size', 'SHA-256'], list.map((a) => h('tr', {},
      rowh(h('a', { href: `${base}/artifacts/${enc(a.name)}?run=${run}`, download: a.name, 'data-testid': 'artifact-' + a.name }, a.name)),
      num(bytes(a.size)), td(h('code', { class: 'sha', 'data-testid': 'checksum-' + a.name }, a.sha256)))))
      : muted((job && job.spec.artifacts || []).length ? 'Collected when the run ends.' : 'This job declares no artifacts.'));
    const u = (mine ? s.usage : rec.usage) || null, an = (mine ? s.anomalies : rec.anomalies) || [];
    keep(usage, [u, an], () => [u ? facts([['CPU time', dur(u.cpuMillis)], ['Peak memory', bytes(u.peakMemoryBytes)], ['Output', bytes(u.outputBytes)]]) : muted('No usage recorded for this run yet.'),
      an.length ? h('ul', { class: 'plain anomalies' }, an.map((a) => h('li', {}, tone(a.kind, 'wait'), ' ', a.message))) : muted('No anomalies in this run.')]);
    keep(spec, [md(job).generation, rec.run], () => specBox(job ? job.spec : rec.context && rec.context.spec));
    logs.sync(job, runs);
  };
  const settle = () => {
    if (synced && fetched && !loaded) (loaded = true), show(), ctx.ready();
  };
  const load = () => Promise.all([
    api(base + '/runs').then((r) => (runs = r.items || []), (e) => ((runs = []), e.code === 404 || hist.replaceChildren(errBox(e, 'Run history')))),
    eventsBox(events, ns, 'Job', name),
  ]).then(() => {
    if (ctx.closed) return;
    keep(hist, runs.length ? runs : st(job).history || [], () => historyBox(ns, name, runs, job));
    fetched = true;
    show();
    settle();
  });
  watchOne(ctx, 'jobs', ns, name, (o, isSynced) => {
    job = o;
    synced = isSynced;
    const s = st(o), key = `${s.run}/${s.attempt}/${s.phase}/${!!o}`;
    if (key !== lastKey) (lastKey = key), load();
    else show();
    settle();
  });
}

function historyBox(ns, name, runs, job) {
  if (!runs.length) {
    const hs = st(job).history || [];
    return hs.length ? table(['Run', 'Phase', 'Started', 'Duration', 'Exit code', 'Attempts'], hs.map((r) => h('tr', {}, h('th', {}, r.run), td(pill(r.phase)), td(when(r.startTime)), num(dur(r.durationMs)), num(r.exitCode ?? '—'), num(r.attempts))))
      : muted('No runs yet.');
  }
  return h('div', {}, trend(runs.slice(0, 50).reverse()), table(['Run', 'Phase', 'Trigger', 'Started', 'Duration', 'Exit code', 'Attempts', 'Anomalies', ''], runs.map((r, i) => h('tr', {},
    rowh(h('a', { href: `/ui/jobs/${enc(ns)}/${enc(name)}?run=${r.run}` }, '#', r.run)), td(pill(r.phase)), td((r.context && r.context.trigger) || '—'),
    td(when(r.startTime)), num(dur(span(r.startTime, r.completionTime))), num(r.exitCode ?? '—'), num(r.attempts),
    td((r.anomalies || []).map((a) => pill(a.kind, { class: 'pill t-wait', title: a.message }))),
    td(runs[i + 1] ? h('a', { href: `/ui/compare/${enc(ns)}/${enc(name)}?a=${runs[i + 1].run}&b=${r.run}` }, 'compare with #', runs[i + 1].run) : '')))));
}

// Bars of run durations, oldest first, coloured by phase.
function trend(runs) {
  const ds = runs.map((r) => span(r.startTime, r.completionTime)).map((d) => (d >= 0 ? d : 0));
  const max = Math.max(1, ...ds), W = 640, H = 90, bw = Math.min(28, (W - 40) / runs.length);
  const s = svg('svg', { class: 'trend', viewBox: `0 0 ${W} ${H + 18}`, role: 'img', 'aria-label': `Duration of the last ${runs.length} runs; the longest took ${dur(max)}` },
    svg('text', { x: 0, y: 10, class: 'axis' }, dur(max)), svg('line', { x1: 38, x2: W, y1: H, y2: H, class: 'base' }));
  runs.forEach((r, i) => {
    const hgt = Math.max(2, (ds[i] / max) * (H - 14)), x = 40 + i * bw;
    s.append(svg('rect', { x, y: H - hgt, width: bw - 3, height: hgt, rx: 2, 'data-phase': r.phase }, svg('title', {}, `run ${r.run}: ${r.phase}, ${dur(ds[i])}`)));
    if (runs.length <= 20 || i % 5 === 0) s.append(svg('text', { x: x + (bw - 3) / 2, y: H + 14, class: 'axis', 'text-anchor': 'middle' }, r.run));
  });
  return s;
}

// The log of one attempt, step by step: finished steps are read once, the running one
// is followed as server-sent events (one stream at a time, whatever the number of steps).
class Logs {
  constructor(ctx, base) {
    Object.assign(this, { ctx, base, parts: new Map(), key: '', sel: { run: +ctx.q.get('run') || 0, attempt: +ctx.q.get('attempt') || 0 } });
    this.bar = h('div', { class: 'logbar' });
    this.box = h('div', { class: 'log', 'data-testid': 'log' });
    this.el = h('div', {}, this.bar, this.box);
    ctx.on(() => this.reset());
  }
  reset() {
    for (const p of this.parts.values()) p.es && p.es.close(), (p.gone = true);
    this.parts.clear();
    this.box.replaceChildren();
  }
  url(run, attempt, step, follow) {
    return `${this.base}/log?run=${run}&attempt=${attempt}` + (step ? '&step=' + enc(step) : '') + (follow ? '&follow=true' : '');
  }
  sync(job, runs) {
    const s = st(job), current = s.run || (runs[0] && runs[0].run) || 0;
    const run = this.sel.run || current, rec = runs.find((r) => r.run === run) || {};
    if (!run) return this.box.replaceChildren(muted('No run yet.'));
    const mine = job && run === s.run;
    const attempts = mine ? s.attempt || 1 : rec.attempts || 1;
    const attempt = Math.min(this.sel.attempt || attempts, attempts);
    const live = mine && attempt === s.attempt && !FINISHED.includes(s.phase);
    const statusSteps = (mine && attempt === s.attempt ? s.steps : attempt === attempts ? rec.steps : null) || [];
    const names = ((job && job.spec.steps) || rec.steps || statusSteps).map((x) => x.name);
    const key = `${run}/${attempt}/${names.join()}`;
    if (key !== this.key) {
      this.reset();
      this.key = key;
      this.run = run;
      this.attempt = attempt;
      this.bar.replaceChildren(this.picker(runs, current, run, attempts, attempt));
      for (const n of names) this.box.append(this.part(n).el);
      if (!names.length) this.box.append(muted('No steps.'));
    }
    const firstOpen = names.findIndex((n) => { const x = statusSteps.find((y) => y.name === n); return !x || x.exitCode == null; });
    names.forEach((n, i) => {
      const p = this.parts.get(n), x = statusSteps.find((y) => y.name === n) || {};
      const running = live && i === firstOpen;
      p.badge.replaceWith((p.badge = x.exitCode != null ? tone('exit ' + x.exitCode, x.exitCode ? 'bad' : 'ok') : running ? pill('Running') : live ? pill('Pending') : h('span')));
      p.time.textContent = x.durationMs != null ? dur(x.durationMs) : '';
      if (!live || x.exitCode != null) {
        if (p.state === 'live') {
          const es = p.es;
          p.state = 'closing';
          setTimeout(() => (es && es.close(), (p.es = null), this.fetch(p)), 600);
        } else if (p.state === 'idle' || p.state === 'waiting') this.fetch(p);
      } else if (running && p.state !== 'live') this.follow(p);
      else if (!running && p.state === 'idle') (p.state = 'waiting'), (p.pre.textContent = 'Not started yet.');
    });
  }
  picker(runs, current, run, attempts, attempt) {
    const nav = (changes) => go(withQuery(changes), true);
    const runNums = [...new Set([current, ...runs.map((r) => r.run)])].filter(Boolean).sort((a, b) => b - a);
    return h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() },
      h('label', { for: 'l-run' }, 'Run'), h('select', { id: 'l-run', onchange: (e) => nav({ run: e.target.value === String(current) ? '' : e.target.value, attempt: '' }) },
        runNums.map((r) => h('option', { value: r, selected: r === run }, `#${r}${r === current ? ' (latest)' : ''}`))),
      h('label', { for: 'l-attempt' }, 'Attempt'), h('select', { id: 'l-attempt', onchange: (e) => nav({ attempt: e.target.value === String(attempts) ? '' : e.target.value }) },
        Array.from({ length: attempts }, (_, i) => h('option', { value: i + 1, selected: i + 1 === attempt }, `${i + 1} of ${attempts}`))),
      h('a', { href: this.url(run, attempt), target: '_blank', rel: 'noopener' }, 'Whole log as text'));
  }
  part(name) {
    const pre = h('pre', { class: 'lines', tabindex: 0, 'aria-label': `output of step ${name}` });
    const badge = h('span'), time = h('span', { class: 'muted' });
    const el = h('details', { open: true, class: 'step' }, h('summary', {}, h('span', { class: 'stepname' }, name), ' ', badge, ' ', time), pre);
    const p = { name, pre, badge, time, el, state: 'idle', lines: 0 };
    this.parts.set(name, p);
    return p;
  }
  async fetch(p) {
    p.state = 'loading';
    const u = this.url(this.run, this.attempt, p.name) + '&tailLines=2000';
    try {
      const text = await api(u, { text: true });
      if (p.gone) return;
      const n = text.split('\n').length - 1;
      p.pre.replaceChildren(text || h('span', { class: 'muted' }, '(no output)'));
      if (n >= 2000) p.pre.prepend(h('span', { class: 'muted' }, '… the last 2,000 lines; ', h('a', { href: this.url(this.run, this.attempt, p.name), target: '_blank', rel: 'noopener' }, 'the whole step'), '\n'));
    } catch (e) {
      if (!p.gone) p.pre.replaceChildren(h('span', { class: 'muted' }, e.code === 404 || e.code === 400 ? '(no output)' : e.message));
    }
    p.state = 'done';
  }
  follow(p) {
    p.state = 'live';
    p.pre.replaceChildren();
    let buf = '', queued = false;
    const flush = () => {
      queued = false;
      if (p.gone || !buf) return;
      const stick = p.pre.scrollTop + p.pre.clientHeight >= p.pre.scrollHeight - 8;
      p.pre.append(buf);
      p.lines += buf.split('\n').length - 1;
      buf = '';
      if (p.lines > 5000) (p.pre.textContent = p.pre.textContent.split('\n').slice(-4000).join('\n')), (p.lines = 4000);
      if (stick) p.pre.scrollTop = p.pre.scrollHeight;
    };
    const es = (p.es = new EventSource(this.url(this.run, this.attempt, p.name, true)));
    es.onmessage = (e) => {
      buf += e.data + '\n';
      if (!queued) (queued = true), requestAnimationFrame(flush);
    };
    es.addEventListener('end', () => {
      es.close();
      flush();
      if (p.es === es) (p.es = null), (p.state = 'done');
    });
  }
}

// ---------------------------------------------------------------- workflow

function workflowPage(ctx, ns, name) {
  const base = objUrl('workflows', ns, name);
  const phaseEl = h('span', { 'data-testid': 'workflow-phase', class: 'pill' }, '…');
  const btn = (label, id, path, body, cls) => {
    const b = h('button', { class: 'btn ' + (cls || ''), type: 'button', 'data-testid': id, onclick: () => act(b, base + path, body) }, label);
    return b;
  };
  const rerunFailed = btn('Rerun failed', 'rerun-failed', '/rerun', { mode: 'failed' }), rerunAll = btn('Rerun all', 'rerun', '/rerun', {}), cancel = btn('Cancel run', 'cancel', '/cancel', undefined, 'danger');
  const summary = h('p', { class: 'summary' }), info = h('div'), approvals = h('div', { class: 'approvals' }), groups = h('div', { class: 'groups' });
  const host = h('div', { class: 'dagwrap', tabindex: -1 }), nodes = h('div'), hist = h('div'), events = h('div'), spec = h('div');
  const legend = h('p', { class: 'legend' }, ['Pending', 'Running', 'WaitingApproval', 'Succeeded', 'Failed', 'Skipped', 'Cancelled'].map((p) => pill(p)), h('span', { class: 'critkey' }, 'critical path'));
  ctx.main.append(crumbs(h('a', { href: `/ui/workflows?ns=${enc(ns)}` }, 'Workflows'), ns), title(name, phaseEl, h('div', { class: 'actions' }, rerunFailed, rerunAll, cancel)), summary, info, approvals,
    section('Graph', legend, groups, host, h('p', { class: 'muted small' }, 'Drag to pan. A node opens its job; a group of matrix nodes expands.')),
    section('Nodes', nodes), section('Runs', hist), section('Events', events), section('Spec', spec));
  focusHead(ctx);
  let wf = null, waitingKey = null, first = true, lastRun = null, fetched = null;
  const showGroups = (g) => {
    const big = [...g.byBase].filter(([b, m]) => m.length >= GROUP_MIN && g.nodes.find((n) => n.base === b).matrix).map(([b, m]) => [b, m.length, dag.expanded.has(b)]);
    keep(groups, big, () => big.map(([b, n, open]) => h('button', { type: 'button', class: 'btn small', 'aria-pressed': String(open), onclick: () => dag.toggle(b) },
      `${open ? 'Collapse' : 'Expand'} matrix ${b} (${n} nodes)`)));
  };
  const dag = new Dag(host, { href: (n) => (n.job ? `/ui/jobs/${enc(ns)}/${enc(n.job)}` : null), onToggle: (r) => showGroups(r.g) });
  const show = () => {
    const s = st(wf);
    phaseEl.textContent = s.phase || 'Pending';
    phaseEl.className = 'pill t-' + (TONE[s.phase || 'Pending'] || 'idle');
    summary.textContent = s.summary || '';
    cancel.disabled = !s.run || ['Succeeded', 'Failed', 'Cancelled'].includes(s.phase);
    rerunFailed.disabled = !s.run;
    const ran = span(s.startTime, s.completionTime);
    const { crit, g } = dag.update(wf.spec, s);
    keep(info, [s.run, s.progress, s.startTime, s.completionTime, s.inputs, wf.spec.schedule, s.nextScheduleTime, [...crit.nodes], s.activeRuns], () => facts([['Workspace', ns], ['Run', s.run || 'none yet'], ['Progress', progress(s.progress)], ['Started', when(s.startTime)], ['Duration', s.startTime && !s.completionTime && s.phase !== 'Succeeded' ? since(s.startTime) : dur(ran)],
      ['Inputs', Object.entries(s.inputs || {}).map(([k, v]) => `${k}=${v}`).join(', ')], ['Schedule', wf.spec.schedule && `${wf.spec.schedule}${s.nextScheduleTime ? ', next ' + new Date(ts(s.nextScheduleTime)).toLocaleString() : ''}`],
      ['Critical path', crit.nodes.size ? `${[...crit.nodes].reverse().join(' → ')} (${dur(crit.ms)})` : null],
      (s.activeRuns || []).length && ['Older runs', (s.activeRuns || []).map((r) => `#${r.run} ${r.phase} ${r.progress || ''}`).join(', ')]]));
    showGroups(g);
    const waiting = (s.nodes || []).filter((n) => n.phase === 'WaitingApproval');
    const wk = s.run + ':' + waiting.map((n) => n.name + n.message).join();
    if (wk !== waitingKey) (waitingKey = wk), approvals.replaceChildren(...waiting.map((n) => approval(base, s.run, n)));
    keep(nodes, [s.nodes, [...crit.nodes]], () => nodeTable(ns, s.nodes || [], crit));
    keep(spec, md(wf).generation, () => specBox(wf.spec));
    if (s.run + s.phase !== lastRun) {
      lastRun = s.run + s.phase;
      fetched = Promise.all([api(base + '/runs').then((r) => hist.replaceChildren(wfRuns(ns, name, r.items || [])), (e) => hist.replaceChildren(errBox(e, 'Run history'))),
        eventsBox(events, ns, 'Workflow', name)]);
    }
  };
  watchOne(ctx, 'workflows', ns, name, (o, synced) => {
    wf = o;
    if (!o) {
      if (synced) gone(ctx, `There is no workflow ${ns}/${name} (or it was just deleted).`);
      return;
    }
    gone(ctx, null);
    show();
    if (synced && first) (first = false), fetched.then(() => ctx.ready());
  });
}
function approval(base, run, n) {
  const msg = h('input', { type: 'text', id: 'msg-' + n.name, placeholder: 'optional', class: 'grow' });
  const body = () => ({ node: n.name, run, message: msg.value, by: S.session.member || undefined });
  const ok = h('button', { type: 'button', class: 'btn primary', 'data-testid': 'approve-' + n.name, onclick: () => act(ok, base + '/approve', body()) }, 'Approve');
  const no = h('button', { type: 'button', class: 'btn danger', 'data-testid': 'reject-' + n.name, onclick: () => act(no, base + '/reject', body()) }, 'Reject');
  return h('section', { class: 'card wait', 'aria-label': 'Approval for ' + n.name }, h('h2', {}, 'Waiting for approval: ', n.name), n.message && h('p', {}, n.message),
    h('div', { class: 'filters' }, h('label', { for: 'msg-' + n.name }, 'Message'), msg, ok, no));
}
function nodeTable(ns, list, crit) {
  if (!list.length) return muted('No run yet.');
  const wrap = h('details', { open: list.length <= 40 || null }, h('summary', {}, `${list.length} nodes`),
    table(['Node', 'Phase', 'Job', 'Duration', 'Attempts', 'Message'], list.map((n) => h('tr', { class: crit.nodes.has(n.name) ? 'crit' : null },
      rowh(n.name), td(pill(n.phase || 'Pending')), td(n.job ? h('a', { href: `/ui/jobs/${enc(ns)}/${enc(n.job)}` }, n.job) : '—'),
      num(nodeDuration(n) || '—'), num(n.attempts || (n.iterations ? n.iterations + ' iterations' : '—')), sum(n.message || '')))));
  return wrap;
}
const wfRuns = (ns, name, items) => items.length ? table(['Run', 'Phase', 'Trigger', 'Progress', 'Started', 'Duration', 'Summary', ''], items.map((r, i) => h('tr', {},
  rowh('#', r.run), td(pill(r.phase)), td(r.trigger || '—'), td(r.progress || '—'), td(when(r.startTime)),
  num(dur(span(r.startTime, r.completionTime))), sum(r.summary || ''),
  td(items[i + 1] ? h('a', { href: `/ui/workflows/${enc(ns)}/${enc(name)}/compare?a=${items[i + 1].run}&b=${r.run}` }, 'compare with #', items[i + 1].run) : ''))))
  : muted('No runs recorded yet.');

// ---------------------------------------------------------------- sandbox

function sandboxPage(ctx, ns, name) {
  const base = objUrl('sandboxes', ns, name);
  const phaseEl = h('span', { 'data-testid': 'sandbox-phase', class: 'pill' }, '…');
  const stop = h('button', { class: 'btn', type: 'button', 'data-testid': 'stop', onclick: () => act(stop, base + '/stop', undefined, 'Stopping') }, 'Stop');
  const start = h('button', { class: 'btn', type: 'button', 'data-testid': 'start', onclick: () => act(start, base + '/start', undefined, 'Starting') }, 'Start');
  const message = h('p', { class: 'summary' }), expires = h('output', { 'data-testid': 'expires', class: 'countdown' }, '…'), activity = h('span', { 'data-testid': 'activity' });
  const info = h('div'), services = h('div'), events = h('div'), spec = h('div'), exec = execConsole(base);
  ctx.main.append(crumbs(h('a', { href: `/ui/sandboxes?ns=${enc(ns)}` }, 'Sandboxes'), ns), title(name, phaseEl, h('div', { class: 'actions' }, stop, start)), message,
    h('section', { class: 'card expiry', 'aria-label': 'Expiry' }, h('div', {}, h('span', { class: 'muted' }, 'Expires '), expires), h('div', {}, h('span', { class: 'muted' }, 'Last activity '), activity)),
    info, section('Services', services), section('Exec', exec), section('Events', events), section('Spec', spec));
  focusHead(ctx);
  let sb = null, first = true, lastPhase = null;
  const tick = () => {
    const s = st(sb);
    expires.textContent = s.expiresAt ? countdown(s.expiresAt) + (s.expiryReason ? ` (${s.expiryReason})` : '') : s.expiredAt ? 'expired ' + rel(ts(s.expiredAt)) : 'never';
    expires.title = s.expiresAt ? new Date(ts(s.expiresAt)).toLocaleString() : '';
    expires.className = 'countdown' + (ts(s.expiresAt) - Date.now() < 60e3 ? ' soon' : '');
  };
  ctx.every(1000, () => sb && tick());
  watchOne(ctx, 'sandboxes', ns, name, (o, synced) => {
    sb = o;
    if (!o) {
      if (synced) gone(ctx, `There is no sandbox ${ns}/${name} (or it was just deleted).`);
      return;
    }
    gone(ctx, null);
    const s = st(o), p = s.phase || 'Pending';
    phaseEl.textContent = p;
    phaseEl.className = 'pill t-' + (TONE[p] || 'idle');
    stop.disabled = o.spec.state === 'Stopped' || ['Stopped', 'Stopping', 'Expired'].includes(p);
    start.disabled = !stop.disabled;
    message.textContent = s.message || '';
    tick();
    activity.replaceChildren(when(s.lastActivityTime || s.startedAt));
    exec.fill((s.services || []).map((x) => x.name));
    keep(info, [o.spec, s.startedAt, s.claimedFrom], () => facts([['Workspace', ns], ['Template', o.spec.templateRef], ['Network', o.spec.network], ['Started', when(s.startedAt)],
      ['Idle timeout', o.spec.idleTimeoutSeconds && dur(o.spec.idleTimeoutSeconds * 1000)], ['TTL', o.spec.ttlSeconds && dur(o.spec.ttlSeconds * 1000)],
      ['Claimed from', s.claimedFrom && `pool of ${s.claimedFrom.template} (slot ${s.claimedFrom.slot})`]]));
    keep(services, s.services || [], () => (s.services || []).length ? table(['Service', 'State', 'Ready', 'Restarts', 'Endpoints', 'Message'], s.services.map((x) => h('tr', {},
      rowh(x.name), td(x.state || '—'), td(tone(x.ready ? 'ready' : 'not ready', x.ready ? 'ok' : 'idle')),
      num(x.restarts || 0), td((x.endpoints || []).map((e) => h('div', {}, h('a', { href: `http://${e.hostIp}:${e.hostPort}/`, target: '_blank', rel: 'noopener' }, `${e.hostIp}:${e.hostPort}`), ` → ${e.containerPort}${e.name ? ' (' + e.name + ')' : ''}`))),
      sum(x.message || ''))))
      : muted('No service runs yet.'));
    keep(spec, md(o).generation, () => specBox(o.spec));
    if (p !== lastPhase) (lastPhase = p), eventsBox(events, ns, 'Sandbox', name);
    if (synced && first) (first = false), ctx.ready();
  });
}

// One command at a time: POST exec, then its output and exit code. Up and Down recall.
function execConsole(base) {
  const input = h('input', { id: 'exec-cmd', type: 'text', class: 'grow mono', 'data-testid': 'exec-command', placeholder: 'echo hello', autocomplete: 'off', spellcheck: 'false' });
  const service = h('select', { id: 'exec-svc', 'aria-label': 'Service' });
  const run = h('button', { class: 'btn primary', type: 'submit', 'data-testid': 'exec-run' }, 'Run');
  const out = h('pre', { class: 'lines exec', 'data-testid': 'exec-output', tabindex: 0, 'aria-live': 'polite' });
  const exit = h('output', { 'data-testid': 'exec-exit' }), meta = h('span', { class: 'muted' });
  const past = [];
  let at = 0;
  const text = (data, encoding) => (encoding === 'base64' ? new TextDecoder().decode(Uint8Array.from(atob(data || ''), (c) => c.charCodeAt(0))) : data || '');
  const form = h('form', { class: 'filters', onsubmit: async (e) => {
    e.preventDefault();
    const cmd = input.value;
    if (!cmd.trim()) return;
    if (past[past.length - 1] !== cmd) past.push(cmd);
    at = past.length;
    run.disabled = true;
    out.replaceChildren(h('span', { class: 'muted' }, '$ ' + cmd + '\n'));
    exit.textContent = '';
    meta.textContent = 'running…';
    try {
      const r = await api(base + '/exec', { method: 'POST', body: { command: ['sh', '-c', cmd], service: service.value || undefined } });
      out.append(text(r.stdout, r.stdoutEncoding), r.stderr ? h('span', { class: 'stderr' }, text(r.stderr, r.stderrEncoding)) : '');
      exit.textContent = r.exitCode;
      exit.className = r.exitCode ? 'bad' : 'ok';
      meta.textContent = `${dur(r.durationMs)}${r.timedOut ? ', timed out' : ''}`;
    } catch (err) {
      out.append(h('span', { class: 'stderr' }, err.message));
      meta.textContent = '';
    } finally {
      run.disabled = false;
      input.focus();
    }
  } }, h('label', { for: 'exec-cmd' }, 'Command'), input, service, run);
  input.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowUp' && e.key !== 'ArrowDown') return;
    at = Math.max(0, Math.min(past.length, at + (e.key === 'ArrowUp' ? -1 : 1)));
    input.value = past[at] || '';
    e.preventDefault();
  });
  const el = h('div', {}, h('p', { class: 'muted small' }, 'Runs ', h('code', {}, 'sh -c COMMAND'), ' in the sandbox and shows what it printed.'), form, out,
    h('p', {}, h('span', { class: 'muted' }, 'Exit code '), exit, ' ', meta));
  // The services to choose from, once the status names them (the first is the default).
  el.fill = (names) => {
    if (names.join() !== [...service.options].map((o) => o.value).join()) service.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
    service.hidden = names.length < 2;
  };
  return el;
}

// ---------------------------------------------------------------- compare two runs

// What both comparisons share: the run pickers, the change of a figure, a row of the
// side-by-side table (marked when the runs differ) and the spec's line diff.
function runPicker(runs, a, b) {
  const pick = (id, label, cur, key) => [h('label', { for: id }, label), h('select', { id, onchange: (e) => go(withQuery({ [key]: e.target.value }), true) },
    runs.map((r) => h('option', { value: r.run, selected: r === cur }, `#${r.run} ${r.phase}`)))];
  return h('form', { class: 'filters', onsubmit: (e) => e.preventDefault() }, pick('c-a', 'Run A', a, 'a'), pick('c-b', 'Run B', b, 'b'));
}
const change = (x, y, f) => {
  if (!(x >= 0 && y >= 0 && x !== y)) return '';
  const sign = y > x ? '+' : '−';
  const pct = x ? Math.round((Math.abs(y - x) / x) * 100) : 0;
  return h('span', { class: y > x ? 'worse' : 'better' }, sign + f(Math.abs(y - x)) + (pct ? ` (${sign}${pct}%)` : ''));
};
const asText = (v) => (v instanceof Node ? v.textContent : String(v));
const cmpRow = (k, x, y, ch) => h('tr', { class: k !== 'Started' && asText(x) !== asText(y) ? 'differs' : null }, rowh(k), td(x), td(y), td(ch || ''));
const hashCode = (x) => (x ? h('code', { class: 'sha' }, x.slice(0, 16)) : h('span', { class: 'muted' }, 'not recorded'));
const specCmp = (sa, sb, a, b) => sa && sb ? specDiff(yaml(sa), yaml(sb))
  : muted(sa || sb ? `The spec of run #${sa ? b.run : a.run} is not recorded` : `The specs of runs #${a.run} and #${b.run} are not recorded`,
    ': runs recorded before orcaops kept the spec of each run cannot be compared by spec.');

async function comparePage(ctx, ns, name) {
  const base = objUrl('jobs', ns, name);
  ctx.main.append(crumbs(h('a', { href: `/ui/jobs?ns=${enc(ns)}` }, 'Jobs'), ns, h('a', { href: `/ui/jobs/${enc(ns)}/${enc(name)}` }, name)), title(`Compare runs of ${name}`));
  focusHead(ctx);
  let runs;
  try {
    runs = (await api(base + '/runs')).items || [];
  } catch (e) {
    ctx.main.append(errBox(e, 'Run history'));
    return ctx.ready();
  }
  if (ctx.closed) return;
  const a = runs.find((r) => r.run === +ctx.q.get('a')) || runs[1], b = runs.find((r) => r.run === +ctx.q.get('b')) || runs[0];
  if (!a || !b) {
    ctx.main.append(muted('This job needs two runs to compare.'));
    return ctx.ready();
  }
  ctx.main.append(runPicker(runs, a, b));
  const d = (r) => span(r.startTime, r.completionTime);
  const ctxOf = (r) => r.context || {}, U = (r) => r.usage || {};
  const row = cmpRow, delta = change;
  const cols = ['', `Run #${a.run}`, `Run #${b.run}`, 'Change'];
  ctx.main.append(section('Runs', table(cols, [
    row('Phase', pill(a.phase), pill(b.phase)),
    row('Trigger', ctxOf(a).trigger || '—', ctxOf(b).trigger || '—'),
    row('Started', when(a.startTime), when(b.startTime)),
    row('Duration', dur(d(a)), dur(d(b)), delta(d(a), d(b), dur)),
    row('Attempts', a.attempts, b.attempts),
    row('Exit code', a.exitCode ?? '—', b.exitCode ?? '—'),
    row('Image', ctxOf(a).image || '—', ctxOf(b).image || '—'),
    row('Image id', h('code', { class: 'sha' }, ctxOf(a).imageId || '—'), h('code', { class: 'sha' }, ctxOf(b).imageId || '—')),
    row('Spec hash', hashCode(ctxOf(a).specHash), hashCode(ctxOf(b).specHash), ctxOf(a).specHash !== ctxOf(b).specHash ? 'changed' : ''),
    row('CPU time', dur(U(a).cpuMillis), dur(U(b).cpuMillis), delta(U(a).cpuMillis, U(b).cpuMillis, dur)),
    row('Peak memory', bytes(U(a).peakMemoryBytes), bytes(U(b).peakMemoryBytes), delta(U(a).peakMemoryBytes, U(b).peakMemoryBytes, bytes)),
    row('Output', bytes(U(a).outputBytes), bytes(U(b).outputBytes), delta(U(a).outputBytes, U(b).outputBytes, bytes)),
    row('Summary', a.summary, b.summary),
  ])));
  const names = [...new Set([...(a.steps || []), ...(b.steps || [])].map((s) => s.name))];
  const stepOf = (r, n) => (r.steps || []).find((s) => s.name === n) || {};
  ctx.main.append(section('Steps', table(['Step', `Exit #${a.run}`, `Exit #${b.run}`, `Duration #${a.run}`, `Duration #${b.run}`, 'Change'], names.map((n) => {
    const x = stepOf(a, n), y = stepOf(b, n);
    return h('tr', { class: x.exitCode !== y.exitCode ? 'differs' : null }, rowh(n), num(x.exitCode ?? '—'), num(y.exitCode ?? '—'),
      num(dur(x.durationMs)), num(dur(y.durationMs)), num(delta(x.durationMs, y.durationMs, dur)));
  }))));
  const outs = [...new Set([...Object.keys(a.outputs || {}), ...Object.keys(b.outputs || {})])].filter((k) => (a.outputs || {})[k] !== (b.outputs || {})[k]);
  if (outs.length) ctx.main.append(section('Outputs that differ', table(['Key', `#${a.run}`, `#${b.run}`], outs.map((k) => h('tr', {}, h('th', {}, k), td((a.outputs || {})[k] ?? '—'), td((b.outputs || {})[k] ?? '—'))))));
  const errs = (r) => {
    const lines = (r.steps || []).flatMap((s) => (s.errors || []).map((e) => h('li', {}, h('b', {}, s.name), ` line ${e.line}: ${e.text}`)));
    const an = (r.anomalies || []).map((x) => h('li', {}, tone(x.kind, 'wait'), ' ', x.message));
    return h('div', {}, h('h3', {}, `Run #${r.run}`), lines.length ? h('ul', { class: 'plain errs' }, lines) : muted('No error lines.'), an.length ? h('ul', { class: 'plain' }, an) : muted('No anomalies.'));
  };
  ctx.main.append(section('Errors and anomalies', h('div', { class: 'cols' }, errs(a), errs(b))));
  ctx.main.append(section('Spec', specCmp(ctxOf(a).spec, ctxOf(b).spec, a, b)));
  ctx.ready();
}

// Two runs of a workflow, as `orcaops diff workflow` shows them: the runs, their specs,
// node by node (usage from each node's Job run record), why nodes ended, critical paths.
async function compareWorkflowPage(ctx, ns, name) {
  const base = objUrl('workflows', ns, name), page = `/ui/workflows/${enc(ns)}/${enc(name)}`;
  const root = h('div', { 'data-testid': 'compare-workflow' });
  ctx.main.append(crumbs(h('a', { href: `/ui/workflows?ns=${enc(ns)}` }, 'Workflows'), ns, h('a', { href: page }, name)), title(`Compare runs of ${name}`), root);
  focusHead(ctx);
  let runs;
  try {
    runs = ((await api(base + '/runs')).items || []).sort((x, y) => y.run - x.run);
  } catch (e) {
    root.append(e.code === 404 ? h('p', { class: 'note' }, `There is no workflow ${ns}/${name}, and no run records of one.`) : errBox(e, 'Run history'));
    return ctx.ready();
  }
  if (ctx.closed) return;
  const a = runs.find((r) => r.run === +ctx.q.get('a')) || runs[1], b = runs.find((r) => r.run === +ctx.q.get('b')) || runs[0];
  if (!a || !b) {
    root.append(muted('This workflow needs two runs to compare.'));
    return ctx.ready();
  }
  // Each run's Job run records (by the labels its node Jobs carry), and for a run that
  // did not record its spec, the workflow's current one for the shape of its graph.
  const jobsOf = (r) => api(`${B}/namespaces/${enc(ns)}/runs?limit=1000&labelSelector=${enc(`orcaops.dev/workflow=${name}` + (r ? `,orcaops.dev/workflow-run=${r.run}` : ''))}`)
    .then((x) => x, (e) => ({ items: [], error: e }));
  const [ja, jb, current] = await Promise.all([jobsOf(a), jobsOf(b), a.spec && b.spec ? null : api(base).then((o) => o.spec, () => null)]);
  // The newest run record of each Job.
  const jobs = new Map();
  const add = (list) => { for (const j of list.items || []) if (!jobs.has(j.name) || jobs.get(j.name).run < j.run) jobs.set(j.name, j); };
  add(ja), add(jb);
  // A node kept by a partial rerun kept the Job of an earlier run: the workflow's newest
  // job runs, of every run, hold it.
  if ([...(a.nodes || []), ...(b.nodes || [])].some((n) => n.job && !jobs.has(n.job)) && !ja.error) add(await jobsOf(null));
  if (ctx.closed) return;
  root.append(runPicker(runs, a, b));
  const side = (r) => ({ r, spec: r.spec || current, node: (n) => (r.nodes || []).find((x) => x.name === n) });
  const A = side(a), Bs = side(b);
  const ends = (x) => (x && x.completionTime ? span(x.startTime, x.completionTime) : NaN);
  const jobRun = (s, n) => jobs.get((s.node(n) || {}).job);
  const use = (s, n, k) => ((jobRun(s, n) || {}).usage || {})[k];
  const took = (r) => (r.startTime && !r.completionTime ? h('span', {}, 'running for ', since(r.startTime)) : dur(ends(r)));
  const inputs = (r) => Object.entries(r.inputs || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—';
  root.append(section('Runs', table(['', `Run #${a.run}`, `Run #${b.run}`, 'Change'], [
    cmpRow('Phase', pill(a.phase), pill(b.phase)),
    cmpRow('Trigger', a.trigger || '—', b.trigger || '—'),
    cmpRow('Generation', a.generation, b.generation),
    cmpRow('Started', when(a.startTime), when(b.startTime)),
    cmpRow('Duration', took(a), took(b), change(ends(a), ends(b), dur)),
    cmpRow('Progress', progress(a.progress), progress(b.progress)),
    cmpRow('Inputs', inputs(a), inputs(b)),
    cmpRow('Spec hash', hashCode(a.specHash), hashCode(b.specHash), a.specHash && b.specHash && a.specHash !== b.specHash ? 'changed' : ''),
    cmpRow('Summary', a.summary || '—', b.summary || '—'),
  ])));
  root.append(section('Spec', specCmp(a.spec, b.spec, a, b)));
  const names = [...new Set([...(a.nodes || []), ...(b.nodes || [])].map((n) => n.name))];
  const both = (x, y, f) => {
    const fx = f(x), fy = f(y), c = change(x, y, f);
    return fx === '—' && fy === '—' ? '—' : [fx, ' → ', fy, c && h('div', { class: 'small' }, c)];
  };
  const phase = (n) => (n ? pill(n.phase || 'Pending') : h('span', { class: 'muted' }, 'absent'));
  const err = (j) => j.error ? errBox(j.error, 'Run search (for usage and errors)') : (j.metadata || {}).maybeMore && muted('Only the newest 1,000 job runs of this run were read.');
  root.append(section('Nodes', err(ja) || err(jb), muted(`Each cell: run #${a.run} → run #${b.run}, and the change.`), names.length ? table(['Node', 'Phase', 'Duration', 'Attempts', 'CPU time', 'Peak memory'], names.map((n) => {
    const x = A.node(n), y = Bs.node(n);
    return h('tr', { 'data-testid': 'compare-node-' + n, class: (x && x.phase) !== (y && y.phase) ? 'differs' : null }, rowh(n), td(phase(x), ' → ', phase(y)),
      num(both(ends(x), ends(y), dur)), num(both((x || {}).attempts, (y || {}).attempts, (v) => v ?? '—')),
      num(both(use(A, n, 'cpuMillis'), use(Bs, n, 'cpuMillis'), dur)), num(both(use(A, n, 'peakMemoryBytes'), use(Bs, n, 'peakMemoryBytes'), bytes)));
  }), { class: 'tbl pairs' }) : muted('Neither run has nodes.')));
  // Why each node ended, its first error line and its anomalies.
  const why = (s) => {
    const lines = [];
    for (const n of s.r.nodes || []) {
      if (n.message) lines.push(h('li', {}, h('b', {}, n.name), ': ', n.message));
      const j = jobRun(s, n.name);
      if (!j) continue;
      const step = (j.steps || []).find((x) => (x.errors || []).length);
      if (step) lines.push(h('li', {}, h('b', {}, n.name), ' (', h('a', { href: `/ui/jobs/${enc(ns)}/${enc(j.name)}?run=${j.run}` }, j.name, ' #', j.run), `): step ${step.name} line ${step.errors[0].line}: `,
        h('span', { class: 'errline' }, step.errors[0].text)));
      for (const x of j.anomalies || []) lines.push(h('li', {}, h('b', {}, n.name), ': ', tone(x.kind, 'wait'), ' ', x.message));
    }
    return h('div', {}, h('h3', {}, `Run #${s.r.run}`), lines.length ? h('ul', { class: 'plain' }, lines) : muted('No messages, error lines or anomalies.'));
  };
  root.append(section('Messages, errors and anomalies', h('div', { class: 'cols' }, why(A), why(Bs))));
  // The critical path (along the needs of the spec it ran) and the slowest node.
  const paths = (s) => {
    const took = (n) => `${n} (${dur(ends(s.node(n)))})`;
    const slow = (s.r.nodes || []).filter((n) => ends(n) >= 0).sort((x, y) => ends(y) - ends(x))[0];
    const crit = s.spec && criticalPath(graph(s.spec, { nodes: s.r.nodes || [] }));
    return h('div', {}, h('h3', {}, `Run #${s.r.run}`), facts([
      ['Critical path', crit && crit.nodes.size ? `${[...crit.nodes].reverse().map(took).join(' → ')} = ${dur(crit.ms)}` : s.spec ? 'no node has a duration' : 'unknown: the spec of this run is not recorded'],
      ['Slowest node', slow ? took(slow.name) : '—'],
      !s.r.spec && s.spec && ['Note', 'The spec of this run is not recorded; its graph is drawn from the workflow\'s current spec.'],
    ]));
  };
  root.append(section('Critical paths', h('div', { class: 'cols' }, paths(A), paths(Bs))));
  ctx.ready();
}

// A line diff (longest common subsequence), unchanged runs folded.
function specDiff(x, y) {
  const A = x.split('\n'), Bl = y.split('\n'), n = A.length, m = Bl.length;
  if (x === y) return muted('The same spec.');
  if (n * m > 4e6) return muted('The specs differ (too large to show line by line).');
  const L = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = A[i] === Bl[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && A[i] === Bl[j]) out.push([' ', A[i++]]), j++;
    else if (j < m && (i === n || L[i][j + 1] >= L[i + 1][j])) out.push(['+', Bl[j++]]);
    else out.push(['-', A[i++]]);
  }
  const keep = out.map((l, k) => out.slice(Math.max(0, k - 2), k + 3).some((z) => z[0] !== ' '));
  const pre = h('pre', { class: 'diff' });
  out.forEach(([t, l], k) => {
    if (keep[k]) pre.append(h('span', { class: t === '+' ? 'add' : t === '-' ? 'del' : null }, t + ' ' + l + '\n'));
    else if (keep[k - 1] !== false) pre.append(h('span', { class: 'muted' }, '  …\n'));
  });
  return pre;
}

// ---------------------------------------------------------------- audit log

async function auditPage(ctx) {
  const q = ctx.q.get('q') || '';
  const input = h('input', { type: 'search', id: 'a-q', value: q, class: 'grow', 'data-filter': '', placeholder: 'actor:alice verb:delete kind:job ns:team-a since:24h, or any words', spellcheck: 'false' });
  const verdict = h('div'), results = h('div');
  ctx.main.append(title('Audit log'), verdict, h('form', { class: 'filters', role: 'search', onsubmit: (e) => (e.preventDefault(), go(withQuery({ q: input.value.trim() }))) },
    h('label', { for: 'a-q' }, 'Search'), input, h('button', { class: 'btn', type: 'submit' }, 'Search')), results);
  focusHead(ctx);
  const params = new URLSearchParams({ limit: '500' }), words = [];
  const keys = { actor: 'actor', verb: 'verb', kind: 'kind', ns: 'namespace', namespace: 'namespace', since: 'since', until: 'until' };
  for (const tok of q.split(/\s+/).filter(Boolean)) {
    const m = /^(\w+):(.+)$/.exec(tok);
    if (m && keys[m[1]]) {
      let v = m[2];
      const ago = /^(\d+)([smhd])$/.exec(v);
      if (ago) v = new Date(Date.now() - ago[1] * { s: 1, m: 60, h: 3600, d: 86400 }[ago[2]] * 1000).toISOString();
      params.set(keys[m[1]], v);
    } else words.push(tok.toLowerCase());
  }
  const [v, r] = await Promise.allSettled([api(`${B}/auditlog/verify`), api(`${B}/auditlog?${params}`)]);
  if (ctx.closed) return;
  if (v.status === 'fulfilled') {
    const x = v.value;
    verdict.replaceChildren(h('p', { class: 'banner ' + (x.intact ? 'ok' : 'bad'), role: x.intact ? 'status' : 'alert', 'data-testid': 'audit-verify' },
      x.intact ? `Chain intact: ${x.entries} entries, chain and head verified.` : `Audit log BROKEN at entry ${x.seq} (${x.place}): ${x.message}`));
  } else verdict.replaceChildren(v.reason.code === 403 ? h('p', { class: 'note' }, 'The audit log is for server admins; this key cannot read it.') : errBox(v.reason, 'The audit log'));
  if (r.status === 'fulfilled') {
    const items = (r.value.items || []).filter((e) => !words.length || words.every((w) => JSON.stringify(e).toLowerCase().includes(w))).reverse();
    results.replaceChildren(muted(`${items.length} entries, newest first${items.length >= 500 ? ' (the newest 500 that match)' : ''}.`),
      items.length ? table(['#', 'Time', 'Actor', 'Verb', 'Object', 'Code', 'From', 'Detail'], items.map((e) => h('tr', { class: e.code >= 400 ? 'differs' : null },
        num(e.seq), td(when(e.time)), td(e.member || e.actor, e.agent ? h('span', { class: 'muted' }, ' via ', e.agent) : '', e.member ? h('div', { class: 'muted small' }, e.actor) : ''),
        td(e.verb), td([e.resource, e.namespace, e.name].filter(Boolean).join(' / ')), td(tone(String(e.code), e.code >= 400 ? 'bad' : 'ok')),
        td(e.remote || ''), sum(e.detail || ''))), { 'data-testid': 'audit' }) : null);
  } else if (v.status === 'fulfilled' || v.reason.code !== 403) results.replaceChildren(errBox(r.reason, 'The audit log'));
  ctx.ready();
}

// ---------------------------------------------------------------- start

document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href]');
  // getAttribute: an SVG link's href and target are not strings.
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.getAttribute('target') || a.hasAttribute('download')) return;
  const u = new URL(a.getAttribute('href'), location.href);
  if (u.origin !== location.origin || !u.pathname.startsWith('/ui/') || /^\/ui\/(assets|login|logout)/.test(u.pathname)) return;
  e.preventDefault();
  if (u.hash && u.pathname === location.pathname && u.search === location.search) return document.querySelector(u.hash)?.focus();
  render.moved = true;
  go(u.pathname + u.search);
  window.scrollTo(0, 0);
});
addEventListener('popstate', () => ((render.moved = true), render()));
// A page left for another keeps its connections in the back/forward cache, and a browser
// opens at most six per server: close them when the page is hidden, reopen on return.
addEventListener('pagehide', () => page && page.close());
addEventListener('pageshow', (e) => e.persisted && render());
document.addEventListener('keydown', (e) => {
  const t = e.target;
  if (e.key === '/' && !/^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) && !t.isContentEditable) {
    const f = document.querySelector('[data-filter]');
    if (f) e.preventDefault(), f.focus();
  }
});

async function start() {
  try {
    S.session = await api('/ui/session');
  } catch (e) {
    if (e.code !== 401) $('main').replaceChildren(h('h1', {}, 'The dashboard cannot reach the server'), h('p', { class: 'error', role: 'alert' }, e.message));
    return;
  }
  const s = S.session;
  S.ns = new URLSearchParams(location.search).get('ns') || s.workspace || 'default';
  $('who').textContent = (s.member || 'signed in') + (s.admin ? ' (server admin)' : s.workspace ? ` · ${s.workspace}` : '') + (s.agent ? ` · agent ${s.agent}` : '');
  $('ws').addEventListener('change', (e) => {
    S.ns = e.target.value;
    const p = location.pathname;
    go(/^\/ui\/(jobs|workflows|sandboxes|workspaces|policies|audit)?\/?$/.test(p) ? withQuery({ ns: S.ns, phase: '', q: '' }) : '/ui/?ns=' + enc(S.ns));
  });
  $('logout').addEventListener('click', async () => {
    try { await fetch('/ui/logout', { method: 'POST', headers: { 'X-Orcaops-Csrf': '1' } }); } finally { location.href = '/ui/login'; }
  });
  if (!s.admin) document.querySelector('#nav a[data-path="/ui/audit"]').parentElement.hidden = true;
  await fillWorkspaces();
  render();
}
start();

// The workflow DAG: from a Workflow's spec (the edges) and status (the nodes) to an SVG
// laid out left to right. Longest-path layering, barycenter ordering within a layer,
// matrix combinations grouped once there are many, the critical path marked.

const NS = 'http://www.w3.org/2000/svg';
const W = 184, H = 48, GX = 64, GY = 14, PAD = 18;
// A matrix node with at least this many combinations is drawn as one group node.
export const GROUP_MIN = 7;
const FINISHED = ['Succeeded', 'Failed', 'Skipped', 'Cancelled'];
const ORDER = ['Failed', 'Running', 'WaitingApproval', 'Pending', 'Cancelled', 'Skipped', 'Succeeded'];

// An SVG element; text children become text nodes (never markup).
export function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(NS, tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const c of kids.flat()) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

const ms = (a, b) => Date.parse(b) - Date.parse(a);

export function duration(n) {
  if (!n.startTime) return '';
  const d = n.completionTime ? ms(n.startTime, n.completionTime) : Date.now() - Date.parse(n.startTime);
  if (!(d >= 0)) return '';
  const s = d / 1000;
  const m = Math.floor(s / 60);
  return s < 60 ? s.toFixed(s < 10 ? 1 : 0) + ' s' : m < 60 ? `${m}m ${Math.floor(s % 60)}s` : `${Math.floor(m / 60)}h ${m % 60}m`;
}

// The declared job a status node comes from: its own name, or the longest matrix
// job whose name prefixes it (combinations are named `<job>-<key>-<value>...`).
function declaredOf(name, declared) {
  let best = null;
  for (const d of declared) {
    if (name === d.name) return d;
    if (d.matrix && name.startsWith(d.name + '-') && (!best || d.name.length > best.name.length)) best = d;
  }
  return best;
}

// Nodes and node-level edges. Without a status yet, the declared jobs stand in.
export function graph(spec, status) {
  const declared = ((spec && spec.jobs) || []).map((j) => ({
    name: j.name,
    needs: j.needs || [],
    matrix: !!(j.matrix && Object.keys(j.matrix).length),
    approval: !!j.approval,
  }));
  let nodes = (status && status.nodes) || [];
  if (!nodes.length) nodes = declared.map((d) => ({ name: d.name, phase: 'Pending' }));
  const byBase = new Map();
  const list = nodes.map((n, order) => {
    const d = declaredOf(n.name, declared);
    const base = d ? d.name : n.name;
    if (!byBase.has(base)) byBase.set(base, []);
    byBase.get(base).push(n.name);
    return { ...n, phase: n.phase || 'Pending', id: n.name, base, matrix: !!(d && d.matrix), order };
  });
  const edges = [];
  for (const d of declared)
    for (const need of d.needs)
      for (const a of byBase.get(need) || []) for (const b of byBase.get(d.name) || []) edges.push([a, b]);
  return { nodes: list, edges, byBase };
}

// What is drawn: nodes, or a group node standing for a collapsed matrix.
export function units(g, expanded) {
  const list = [], unitOf = new Map(), groups = new Map();
  for (const n of g.nodes) {
    const size = g.byBase.get(n.base).length;
    if (n.matrix && size >= GROUP_MIN && !expanded.has(n.base)) {
      let u = groups.get(n.base);
      if (!u) {
        u = { id: 'group:' + n.base, group: true, base: n.base, members: [] };
        groups.set(n.base, u);
        list.push(u);
      }
      u.members.push(n);
      unitOf.set(n.id, u);
    } else {
      const u = { id: n.id, node: n };
      list.push(u);
      unitOf.set(n.id, u);
    }
  }
  const seen = new Set(), edges = [];
  for (const [a, b] of g.edges) {
    const ua = unitOf.get(a).id, ub = unitOf.get(b).id, k = ua + '\n' + ub;
    if (ua !== ub && !seen.has(k)) seen.add(k), edges.push([ua, ub]);
  }
  return { list, edges, unitOf };
}

// Counts by phase and the phase a group shows.
export function groupPhase(members) {
  const counts = {};
  for (const m of members) counts[m.phase] = (counts[m.phase] || 0) + 1;
  const phase = counts.Failed ? 'Failed' : counts.Running ? 'Running' : counts.WaitingApproval ? 'WaitingApproval'
    : counts.Succeeded === members.length ? 'Succeeded' : counts.Pending ? (counts.Succeeded ? 'Running' : 'Pending')
    : counts.Cancelled ? 'Cancelled' : counts.Skipped === members.length ? 'Skipped' : 'Succeeded';
  return { counts, phase };
}

// Positions: layer = the longest path from a source; within a layer, sweeps down and up
// ordering each node by the mean position of its neighbours, which removes most crossings.
export function layout(list, edges) {
  const idx = new Map(list.map((u, i) => [u.id, i]));
  const preds = list.map(() => []), succs = list.map(() => []);
  for (const [a, b] of edges) {
    const i = idx.get(a), j = idx.get(b);
    preds[j].push(i);
    succs[i].push(j);
  }
  const indeg = preds.map((p) => p.length), layer = list.map(() => 0), queue = [];
  indeg.forEach((d, i) => d || queue.push(i));
  for (let q = 0; q < queue.length; q++)
    for (const j of succs[queue[q]]) {
      layer[j] = Math.max(layer[j], layer[queue[q]] + 1);
      if (--indeg[j] === 0) queue.push(j);
    }
  const layers = [];
  list.forEach((_, i) => (layers[layer[i]] ||= []).push(i));
  const L = layers.filter(Boolean);
  const pos = new Float64Array(list.length);
  L.forEach((l) => l.forEach((i, k) => (pos[i] = k)));
  const sweep = (l, nb) => {
    const bc = new Map(l.map((i) => [i, nb[i].length ? nb[i].reduce((s, j) => s + pos[j], 0) / nb[i].length : pos[i]]));
    l.sort((x, y) => bc.get(x) - bc.get(y));
    l.forEach((i, k) => (pos[i] = k));
  };
  for (let s = 0; s < 4; s++) {
    for (let k = 1; k < L.length; k++) sweep(L[k], preds);
    for (let k = L.length - 2; k >= 0; k--) sweep(L[k], succs);
  }
  const tallest = Math.max(1, ...L.map((l) => l.length));
  const x = new Float64Array(list.length), y = new Float64Array(list.length);
  L.forEach((l, k) => l.forEach((i) => {
    x[i] = PAD + k * (W + GX);
    y[i] = PAD + ((tallest - l.length) / 2 + pos[i]) * (H + GY);
  }));
  return { idx, x, y, width: PAD * 2 + L.length * (W + GX) - GX, height: PAD * 2 + tallest * (H + GY) - GY };
}

// The longest chain (by duration) of finished nodes along the needs.
export function criticalPath(g) {
  const dur = new Map();
  for (const n of g.nodes) {
    const d = ms(n.startTime, n.completionTime);
    if (FINISHED.includes(n.phase) && d >= 0) dur.set(n.id, d);
  }
  const preds = new Map();
  for (const [a, b] of g.edges) if (dur.has(a) && dur.has(b)) (preds.get(b) || preds.set(b, []).get(b)).push(a);
  const memo = new Map();
  const best = (id) => {
    if (memo.has(id)) return memo.get(id);
    let m = 0, via = null;
    for (const p of preds.get(id) || []) {
      const v = best(p)[0];
      if (v > m) (m = v), (via = p);
    }
    const r = [dur.get(id) + m, via];
    memo.set(id, r);
    return r;
  };
  let top = null, max = 0;
  for (const id of dur.keys()) if (best(id)[0] > max) (max = best(id)[0]), (top = id);
  const nodes = new Set(), edges = new Set();
  for (let id = top; id; id = memo.get(id)[1]) {
    nodes.add(id);
    const via = memo.get(id)[1];
    if (via) edges.add(via + '\n' + id);
  }
  return { nodes, edges, ms: max };
}

const clip = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);

// The view: owns an SVG in a scrollable host, redraws when the shape changes and only
// repaints phases, texts and the critical path otherwise (so focus and scroll stay).
export class Dag {
  constructor(host, { href, onToggle }) {
    Object.assign(this, { host, href, onToggle, expanded: new Set(), sig: '', els: new Map() });
    this.pan();
  }

  toggle(base) {
    this.expanded.has(base) ? this.expanded.delete(base) : this.expanded.add(base);
    this.sig = '';
    if (this.last) {
      const r = this.update(...this.last);
      this.onToggle && this.onToggle(r);
      // Bring what was toggled into view inside the scrollable frame.
      const first = r.u.list.find((x) => x.id === 'group:' + base || (x.node && x.node.base === base));
      const el = first && this.els.get(first.id);
      if (el) this.host.scrollTo({ left: Math.max(0, el.g.transform.baseVal[0].matrix.e - 40), top: Math.max(0, el.g.transform.baseVal[0].matrix.f - 40) });
    }
  }

  update(spec, status) {
    this.last = [spec, status];
    const g = graph(spec, status), u = units(g, this.expanded), crit = criticalPath(g);
    const sig = u.list.map((x) => x.id).join() + '|' + u.edges.join();
    if (sig !== this.sig) this.draw(u, (this.sig = sig));
    this.paint(u, crit);
    return { g, u, crit };
  }

  draw(u) {
    const lay = layout(u.list, u.edges);
    this.els.clear();
    this.edges = new Map();
    const s = svg('svg', {
      'data-testid': 'dag', class: 'dag', width: lay.width, height: lay.height,
      viewBox: `0 0 ${lay.width} ${lay.height}`, role: 'group', 'aria-label': 'Workflow graph',
    }, svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 8 8', refX: 8, refY: 4, markerWidth: 8, markerHeight: 8, markerUnits: 'userSpaceOnUse', orient: 'auto' },
      svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'arrowhead' }))));
    const eg = svg('g', { class: 'edges' }), ng = svg('g', { class: 'nodes' });
    for (const [a, b] of u.edges) {
      const i = lay.idx.get(a), j = lay.idx.get(b);
      const x1 = lay.x[i] + W, y1 = lay.y[i] + H / 2, x2 = lay.x[j], y2 = lay.y[j] + H / 2, mx = (x1 + x2) / 2;
      const p = svg('path', { class: 'edge', d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2 - 1},${y2}`, 'marker-end': 'url(#arrow)' });
      this.edges.set(a + '\n' + b, p);
      eg.append(p);
    }
    for (const unit of u.list) {
      const i = lay.idx.get(unit.id);
      const t1 = svg('text', { x: 12, y: 19, class: 'n1' }), t2 = svg('text', { x: 12, y: 36, class: 'n2' }), tip = svg('title');
      const g = svg('g', { class: 'node', transform: `translate(${lay.x[i]},${lay.y[i]})` }, tip,
        svg('rect', { width: W, height: H, rx: 7 }), t1, t2);
      const el = { g, t1, t2, tip };
      if (unit.group) {
        g.classList.add('group');
        Object.assign(g.dataset, { testid: 'group-' + unit.base });
        g.setAttribute('tabindex', '0');
        g.setAttribute('role', 'button');
        g.setAttribute('aria-expanded', 'false');
        g.insertBefore(svg('rect', { width: W, height: H, rx: 7, x: 4, y: 4, class: 'stack' }), g.children[1]);
        el.bar = svg('g', { class: 'bar', transform: `translate(12,${H - 6})` });
        g.append(el.bar);
        const open = () => this.toggle(unit.base);
        g.addEventListener('click', open);
        g.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), open()));
        ng.append(g);
      } else {
        g.dataset.testid = 'node-' + unit.id;
        el.a = svg('a', { class: 'nodelink' }, g);
        ng.append(el.a);
      }
      this.els.set(unit.id, el);
    }
    s.append(eg, ng);
    this.host.replaceChildren(s);
  }

  paint(u, crit) {
    for (const unit of u.list) {
      const el = this.els.get(unit.id);
      if (unit.group) {
        const { counts, phase } = groupPhase(unit.members);
        const parts = ORDER.filter((p) => counts[p]).map((p) => `${counts[p]} ${p === 'WaitingApproval' ? 'waiting' : p.toLowerCase()}`);
        el.g.dataset.phase = phase;
        el.t1.textContent = clip(`${unit.base} ×${unit.members.length}`, 24);
        el.t2.textContent = clip(parts.join(' · '), 30);
        el.tip.textContent = `${unit.base}: ${unit.members.length} matrix nodes (${parts.join(', ')}); press to expand`;
        el.g.setAttribute('aria-label', el.tip.textContent);
        el.g.classList.toggle('crit', unit.members.some((m) => crit.nodes.has(m.id)));
        let x = 0;
        const bw = W - 24, bars = [];
        for (const p of ORDER) if (counts[p]) {
          const w = (bw * counts[p]) / unit.members.length;
          bars.push(svg('rect', { x, width: Math.max(w, 1), height: 3, 'data-phase': p }));
          x += w;
        }
        el.bar.replaceChildren(...bars);
      } else {
        const n = unit.node, d = duration(n);
        el.g.dataset.phase = n.phase;
        el.t1.textContent = clip(n.name, 24);
        el.t2.textContent = clip(n.phase === 'WaitingApproval' ? 'Waiting for approval' : n.phase + (d ? ' · ' + d : ''), 30);
        el.tip.textContent = `${n.name}: ${n.phase}${d ? ', ' + d : ''}${n.message ? ' (' + n.message + ')' : ''}`;
        el.g.classList.toggle('crit', crit.nodes.has(n.id));
        const link = this.href(n);
        if (link) el.a.setAttribute('href', link), el.a.setAttribute('aria-label', el.tip.textContent);
        else el.a.removeAttribute('href');
      }
    }
    for (const [k, p] of this.edges) {
      const [a, b] = k.split('\n');
      const on = crit.edges.has(k) || [...crit.edges].some((e) => {
        const [x, y] = e.split('\n');
        return u.unitOf.get(x).id === a && u.unitOf.get(y).id === b;
      });
      p.classList.toggle('crit', on);
    }
  }

  // Drag the background to pan the scrollable host.
  pan() {
    let from = null;
    this.host.addEventListener('pointerdown', (e) => {
      if (e.button !== 0 || e.target.closest('.node')) return;
      from = [e.clientX, e.clientY, this.host.scrollLeft, this.host.scrollTop];
      this.host.setPointerCapture(e.pointerId);
      this.host.classList.add('panning');
    });
    this.host.addEventListener('pointermove', (e) => {
      if (!from) return;
      this.host.scrollLeft = from[2] - (e.clientX - from[0]);
      this.host.scrollTop = from[3] - (e.clientY - from[1]);
    });
    const end = () => ((from = null), this.host.classList.remove('panning'));
    this.host.addEventListener('pointerup', end);
    this.host.addEventListener('pointercancel', end);
  }
}

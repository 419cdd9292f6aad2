// Flotilla live view: renders the snapshots /ui/events pushes and sends
// the controls. Plain DOM, no dependencies; names from the snapshot go in
// with textContent only (a version comes from an upstream header).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const palette = [
    { cls: 'v1', colour: '#1f6feb', shape: '●', name: 'blue' },
    { cls: 'v2', colour: '#2da44e', shape: '■', name: 'green' },
    { cls: 'v3', colour: '#d4670b', shape: '▲', name: 'orange' },
    { cls: 'v4', colour: '#8250df', shape: '◆', name: 'purple' },
    { cls: 'v5', colour: '#cf222e', shape: '★', name: 'red' },
    { cls: 'v6', colour: '#0598bc', shape: '⬟', name: 'cyan' },
  ];
  const grey = { cls: 'vx', colour: '#6e7781', shape: '○', name: 'grey' };
  const stateText = { ready: '✓ ready', unhealthy: '✗ unhealthy', ejected: '⊘ ejected', draining: '↓ draining', gone: '– gone' };
  let csrf = '';
  let source = null;
  const cards = new Map(); // service name → its elements, kept so focus survives updates

  // versionStyle matches the demo's colours (buildinfo.ColourOf): v1 blue,
  // v2 green, v3 orange…; a backend named after a colour gets that colour.
  function versionStyle(name) {
    const m = /^v?(\d+)/i.exec(name);
    if (m && +m[1] >= 1) return palette[(+m[1] - 1) % palette.length];
    return palette.find((p) => p.name === String(name).toLowerCase()) || grey;
  }
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v; else if (k === 'cls') e.className = v; else e.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) e.append(k);
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  const pct = (x) => (100 * x).toFixed(1) + ' %';
  const ms = (x) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)) + ' ms';
  const lat = (s, q) => (s.requests ? ms(q) : '–');
  // Columns a phone hides (style.css): p50, the sparkline, the total.
  const opt = (td) => { td.classList.add('opt'); return td; };
  const rate = (x) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)) + '/s';
  function errCell(s) {
    const td = el('td', { text: s.requests ? pct(s.errorShare) : '–' });
    if (s.errorShare >= 0.05) td.className = 'err-high'; else if (s.errorShare > 0) td.className = 'err-some';
    return td;
  }

  // setStatus changes the announced connection state; the time of the
  // last snapshot is in #updated, which is not announced every second.
  function setStatus(text) { if ($('status').textContent !== text) $('status').textContent = text; }

  async function start() {
    let r;
    try { r = await fetch('session', { credentials: 'same-origin' }); } catch (e) { setStatus('Cannot reach the gateway: ' + e.message); return; }
    if (!r.ok) { setStatus('Error: ' + ((await r.json().catch(() => ({}))).error || r.status)); return; }
    const s = await r.json();
    if (s.login) { showLogin(); return; }
    csrf = s.csrf;
    document.body.dataset.controls = s.controls ? 'on' : 'off';
    $('login').hidden = true;
    connect();
  }

  function showLogin() {
    if (source) { source.close(); source = null; }
    $('login').hidden = false;
    setStatus('Log in to see the live view.');
    if (location.hash === '#wrong-token') { $('login-error').textContent = 'wrong token'; history.replaceState(null, '', location.pathname); }
    $('token').focus();
  }

  $('login-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('token');
    const body = new URLSearchParams({ token: input.value });
    input.value = '';
    const r = await fetch('login', { method: 'POST', body, credentials: 'same-origin' });
    if (!r.ok) {
      $('login-error').textContent = (await r.json().catch(() => ({}))).error || ('login failed: ' + r.status);
      input.focus();
      return;
    }
    $('login-error').textContent = '';
    start();
  });

  function connect() {
    source = new EventSource('events');
    source.addEventListener('snapshot', (ev) => render(JSON.parse(ev.data)));
    // The session ended: start again (a login form, or on loopback a new
    // session without one).
    source.addEventListener('logout', () => { source.close(); source = null; start(); });
    source.onerror = () => {
      setStatus('Connection lost; reconnecting…');
      // A 401 closes the stream for good: check the session.
      if (source.readyState === EventSource.CLOSED) { source = null; setTimeout(start, 2000); }
    };
  }

  async function control(service, action, body, msg) {
    msg.textContent = '';
    const r = await fetch('routes/' + encodeURIComponent(service) + '/' + action, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
      body: JSON.stringify(body || {}),
    });
    const out = await r.json().catch(() => ({}));
    if (r.status === 401) { showLogin(); return; }
    msg.textContent = r.ok ? action + ': done' : action + ' refused: ' + (out.error || r.status);
    msg.className = r.ok ? 'note' : 'error';
  }

  // card builds a service's persistent elements once: its controls keep
  // keyboard focus while the numbers change under them.
  function card(svc) {
    let c = cards.get(svc.name);
    if (c) return c;
    const id = 'svc-' + cards.size;
    c = { root: el('article', { cls: 'service', 'aria-labelledby': id + '-h', 'data-service': svc.name }) };
    c.title = el('h2', { id: id + '-h', text: svc.name });
    c.badge = el('span', { cls: 'badge', text: '⏸ paused: weights held', hidden: '' });
    c.weights = el('div', { cls: 'weights', role: 'img' });
    c.msg = el('p', { cls: 'note', role: 'status', 'aria-live': 'polite' });
    c.flip = el('button', { type: 'button', 'data-action': 'flip' });
    c.flip.addEventListener('click', () => control(svc.name, 'flip', {}, c.msg));
    c.down = el('button', { type: 'button', 'data-action': 'step-down' });
    c.up = el('button', { type: 'button', 'data-action': 'step-up' });
    c.down.addEventListener('click', () => control(svc.name, 'step', { backend: c.canary, delta: -10 }, c.msg));
    c.up.addEventListener('click', () => control(svc.name, 'step', { backend: c.canary, delta: 10 }, c.msg));
    c.pause = el('button', { type: 'button', 'data-action': 'pause', 'aria-pressed': 'false', text: 'Pause' });
    c.pause.addEventListener('click', () => control(svc.name, 'pause', { paused: c.pause.getAttribute('aria-pressed') !== 'true' }, c.msg));
    c.controls = el('div', { cls: 'controls', role: 'group', 'aria-label': 'Controls for ' + svc.name }, c.flip, c.down, c.up, c.pause);
    c.chart = svg('svg', { class: 'chart', viewBox: '0 0 600 90', preserveAspectRatio: 'none', role: 'img' });
    c.legend = el('p', { cls: 'legend' });
    c.tbody = el('tbody');
    const head = el('tr', {}, ...['Version / instance', 'Backend · state', 'Share', 'Rate', 'Errors', 'p50', 'p99', 'Last 2 min', 'Total'].map((h, i) => {
      const th = el('th', { scope: 'col', text: h });
      return i === 5 || i >= 7 ? opt(th) : th;
    }));
    c.table = el('table', {}, el('caption', { cls: 'skip', text: 'Traffic of ' + svc.name + ' by version and instance' }), el('thead', {}, head), c.tbody);
    c.root.append(el('div', { cls: 'service-head' }, c.title, c.badge), c.weights, c.controls, c.msg, c.chart, c.legend, el('div', { cls: 'table-wrap' }, c.table));
    $('services').append(c.root);
    cards.set(svc.name, c);
    return c;
  }

  function render(snap) {
    const when = new Date(snap.time).toLocaleTimeString();
    setStatus('Live');
    // "2/2 gateway replicas": the merge of every replica's traffic; a
    // replica that did not answer is named with the reason (in the title
    // and in the text, not by colour alone).
    const missing = snap.missing || [];
    const known = snap.replicas.length + missing.length;
    let replicas = snap.replicas.length + (known > 1 ? '/' + known : '') + ' gateway replica' + (known === 1 ? '' : 's');
    if (missing.length) replicas += ' (missing: ' + missing.map((m) => m.name).join(', ') + ')';
    $('updated').textContent = '· ' + when + ' · ' + replicas;
    $('updated').title = missing.map((m) => m.name + ': ' + m.error).join('\n');
    $('window').textContent = snap.windowSeconds;
    const names = new Set(snap.services.map((s) => s.name));
    for (const [name, c] of cards) if (!names.has(name)) { c.root.remove(); cards.delete(name); }
    for (const svc of snap.services) renderService(svc);
    renderTimeline(snap.events || []);
  }

  function renderService(svc) {
    const c = card(svc);
    const controls = document.body.dataset.controls === 'on';
    c.badge.hidden = !svc.paused;
    c.root.dataset.paused = svc.paused ? 'true' : 'false';
    // Weights bar: colour, shape and text together.
    c.weights.replaceChildren();
    const total = (svc.backends || []).reduce((a, b) => a + b.weight, 0) || 1;
    const labels = [];
    for (const b of svc.backends || []) {
      const v = svc.versions.find((x) => x.backends.includes(b.name));
      const st = versionStyle(v ? v.name : b.name);
      const share = b.weight / total;
      const d = el('div', { text: st.shape + ' ' + b.name + ' ' + Math.round(share * 100) + '%', 'data-backend': b.name, 'data-weight': b.weight });
      d.style.width = share * 100 + '%';
      d.style.background = st.colour;
      if (b.weight === 0) d.className = 'zero';
      c.weights.append(d);
      labels.push(b.name + ' weight ' + b.weight);
    }
    c.weights.setAttribute('aria-label', 'Weights: ' + labels.join(', '));
    // Controls: flip for two backends; the step moves the last backend
    // (the canary, by convention listed second).
    const two = svc.backends.length === 2;
    c.canary = svc.backends.length ? svc.backends[svc.backends.length - 1].name : '';
    c.flip.textContent = two ? 'Flip ' + svc.backends[0].name + ' ⇄ ' + svc.backends[1].name : 'Flip (needs two backends)';
    c.down.textContent = 'Canary ' + c.canary + ' −10';
    c.up.textContent = 'Canary ' + c.canary + ' +10';
    c.flip.disabled = !controls || !two || svc.paused;
    c.down.disabled = c.up.disabled = !controls || svc.backends.length < 2 || svc.paused;
    c.pause.disabled = !controls;
    c.pause.setAttribute('aria-pressed', svc.paused ? 'true' : 'false');
    c.pause.textContent = svc.paused ? 'Resume' : 'Pause';
    c.controls.hidden = !controls;
    renderChart(c, svc);
    // Table.
    const rows = [];
    for (const v of svc.versions || []) {
      const st = versionStyle(v.name);
      const tr = el('tr', { cls: 'version', 'data-version': v.name, 'data-share': v.share.toFixed(4), 'data-total-share': v.totalShare.toFixed(4),
        'data-total': v.stats.total, 'data-rate': v.stats.rate.toFixed(2) },
        el('th', { scope: 'row', cls: st.cls, text: st.shape + ' ' + v.name }),
        el('td', { cls: 'state', text: v.backends.join(', ') }),
        el('td', { text: pct(v.share) }), el('td', { text: rate(v.stats.rate) }), errCell(v.stats),
        opt(el('td', { text: lat(v.stats, v.stats.p50Ms) })), el('td', { text: lat(v.stats, v.stats.p99Ms) }),
        opt(el('td', {}, spark(v.stats.history, st.colour, v.name))), opt(el('td', { text: v.stats.total })));
      rows.push(tr);
      for (const i of v.instances || []) {
        const label = i.pod ? i.pod + ' (' + i.address + ')' : i.address;
        rows.push(el('tr', { cls: 'instance', 'data-instance': i.address, 'data-state': i.state },
          el('td', { text: label }),
          el('td', { cls: 'state state-' + i.state, text: (stateText[i.state] || i.state) + (i.lastError ? ': ' + i.lastError : ''), title: i.lastError || (stateText[i.state] || i.state) }),
          el('td', { text: v.stats.requests ? pct(i.stats.requests / v.stats.requests) : '–' }),
          el('td', { text: rate(i.stats.rate) }), errCell(i.stats),
          opt(el('td', { text: lat(i.stats, i.stats.p50Ms) })), el('td', { text: lat(i.stats, i.stats.p99Ms) }),
          opt(el('td', {}, spark(i.stats.history, st.colour, label))), opt(el('td', { text: i.stats.total }))));
      }
    }
    c.tbody.replaceChildren(...rows);
  }

  // renderChart draws the service's requests a second by version, stacked,
  // over the history: where the traffic goes during a rollout.
  function renderChart(c, svc) {
    const n = svc.stats.history ? svc.stats.history.n.length : 0;
    c.chart.replaceChildren();
    c.legend.replaceChildren();
    if (n < 2) return;
    const max = Math.max(1, ...svc.stats.history.n);
    const base = new Array(n).fill(0);
    const W = 600, H = 88, x = (i) => (i * W) / (n - 1), y = (v) => H - (v / max) * (H - 4);
    for (const v of svc.versions || []) {
      const st = versionStyle(v.name);
      const top = base.map((b, i) => b + (v.stats.history ? v.stats.history.n[i] || 0 : 0));
      let d = 'M0,' + y(base[0]);
      for (let i = 0; i < n; i++) d += 'L' + x(i).toFixed(1) + ',' + y(top[i]).toFixed(1);
      for (let i = n - 1; i >= 0; i--) d += 'L' + x(i).toFixed(1) + ',' + y(base[i]).toFixed(1);
      c.chart.append(svg('path', { d: d + 'Z', fill: st.colour, 'fill-opacity': '0.75', stroke: st.colour }));
      for (let i = 0; i < n; i++) base[i] = top[i];
      c.legend.append(el('span', { cls: st.cls, text: st.shape + ' ' + v.name + ' ' + rate(v.stats.rate) }));
    }
    const t = svg('title');
    t.textContent = 'Requests a second of ' + svc.name + ' by version over the last ' + n + ' s, peak ' + max + '/s';
    c.chart.prepend(t);
    c.chart.setAttribute('aria-label', t.textContent);
  }

  function spark(hist, colour, what) {
    const s = svg('svg', { class: 'spark', viewBox: '0 0 120 24', preserveAspectRatio: 'none', role: 'img' });
    const n = hist ? hist.n.length : 0;
    if (n < 2) return s;
    const max = Math.max(1, ...hist.n);
    let pts = '', errs = '';
    hist.n.forEach((count, i) => {
      const x = ((i * 120) / (n - 1)).toFixed(1);
      pts += x + ',' + (23 - (count / max) * 21).toFixed(1) + ' ';
      const e = hist.e[i];
      if (e) errs += 'M' + x + ',23V' + (23 - (e / max) * 21).toFixed(1);
    });
    s.append(svg('polyline', { points: pts, fill: 'none', stroke: colour, 'stroke-width': '1.5' }));
    if (errs) s.append(svg('path', { d: errs, stroke: '#ff7b72', 'stroke-width': '2' }));
    s.setAttribute('aria-label', 'Requests a second of ' + what + ', last ' + n + ' s, peak ' + max + (errs ? ', with errors' : ''));
    return s;
  }

  let lastEvents = '';
  function renderTimeline(events) {
    $('timeline-section').hidden = false;
    const key = events.length + (events.length ? events[events.length - 1].time + events[events.length - 1].message : '');
    if (key === lastEvents) return;
    lastEvents = key;
    const items = events.slice(-50).reverse().map((e) => {
      const t = new Date(e.time);
      return el('li', { 'data-kind': e.kind },
        el('time', { datetime: e.time, text: t.toLocaleTimeString() }),
        el('span', { cls: 'kind', text: e.kind }),
        document.createTextNode(e.message + (e.replica ? ' (' + e.replica + ')' : '')));
    });
    $('timeline').replaceChildren(...items);
  }

  start();
})();

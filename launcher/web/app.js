// The dpcnn launcher's live page: polls /api/status twice a second and draws it.
// Plain JS, no library; every asset comes from the launcher itself.
'use strict';

const $ = (id) => document.getElementById(id);
const points = new Map();  // step -> {step, loss, accuracy}: train curves, grown by each poll
let lastStep = -1, lastUpdate = '';
const lags = [];           // ms from the launcher's update_time to this page showing a new step

// The token: from the URL fragment (#token=...), kept for this tab only and
// taken out of the address bar, or typed into the field.
(function takeToken() {
  const m = /(?:^|[#&])token=([0-9a-fA-F]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem('dpcnn-token', m[1]);
    history.replaceState(null, '', location.pathname + location.search);
  }
  const t = sessionStorage.getItem('dpcnn-token');
  if (t) $('token').value = t;
})();

const num = (v) => (typeof v === 'string' ? Number(v) : v || 0);
const fixed = (v, d) => num(v).toFixed(d);
const ms = (s) => (num(s) * 1e3).toFixed(2);

function duration(sec) {
  sec = Math.round(sec);
  if (sec < 60) return sec + ' s';
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
  return (h ? h + ' h ' : '') + m + ' min' + (h ? '' : ' ' + s + ' s');
}

function clock(ts) {
  return ts ? new Date(ts).toLocaleTimeString() : '';
}

function fillTable(id, rows) {
  const body = $(id).tBodies[0];
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement('tr');
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.appendChild(td);
    }
    return tr;
  }));
}

const SVGNS = 'http://www.w3.org/2000/svg';
function el(name, attrs, text) {
  const e = document.createElementNS(SVGNS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// series: [{cls, pts: [[x, y], ...], dots}] drawn on one set of axes.
function chart(id, series, xLabel) {
  const svg = $(id), W = 400, H = 200, L = 42, R = 8, T = 8, B = 22;
  const all = series.flatMap((s) => s.pts);
  svg.replaceChildren();
  svg.dataset.points = String(all.length);
  if (all.length === 0) {
    svg.appendChild(el('text', {x: W / 2 - 30, y: H / 2}, 'no data yet'));
    return;
  }
  let [x0, x1] = [Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0]))];
  let [y0, y1] = [Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1]))];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) { y0 -= 0.5; y1 += 0.5; }
  const X = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const Y = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  svg.appendChild(el('line', {class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B}));
  svg.appendChild(el('line', {class: 'axis', x1: L, y1: T, x2: L, y2: H - B}));
  const fmt = (v) => (Number.isInteger(v) || Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  svg.appendChild(el('text', {x: 2, y: T + 8}, fmt(y1)));
  svg.appendChild(el('text', {x: 2, y: H - B}, fmt(y0)));
  svg.appendChild(el('text', {x: L, y: H - 6}, fmt(x0)));
  svg.appendChild(el('text', {x: W - R - 60, y: H - 6}, fmt(x1) + ' ' + xLabel));
  for (const s of series) {
    if (s.pts.length === 0) continue;
    const d = s.pts.map((p, i) => (i ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1)).join(' ');
    svg.appendChild(el('path', {class: s.cls, d}));
    if (s.dots) for (const p of s.pts) svg.appendChild(el('circle', {class: s.cls, cx: X(p[0]), cy: Y(p[1]), r: 2.5}));
  }
}

function render(st) {
  document.title = 'dpcnn ' + (st.config_name || '') + ' - ' + (st.state || '').replace('JOB_STATE_', '').toLowerCase();
  const state = (st.state || 'JOB_STATE_UNSPECIFIED').replace('JOB_STATE_', '').toLowerCase();
  $('state').textContent = state;
  $('state').className = 'state ' + state;
  $('config-name').textContent = st.config_name || 'dpcnn';
  $('run-id').textContent = (st.run_id || '') + (st.run_dir ? '  ' + st.run_dir : '');
  $('message').textContent = (st.message || '') + (st.error ? '  (' + st.error + ')' : '');
  const step = num(st.step), total = num(st.total_steps);
  $('step').textContent = step;
  $('total-steps').textContent = total || '-';
  $('bar-fill').style.width = (total > 0 ? Math.min(100, (100 * step) / total) : 0) + '%';
  $('epoch').textContent = st.epoch || '-';
  $('epochs').textContent = st.epochs || '-';
  const done = state === 'finished' || state === 'failed';
  $('eta').textContent = done ? 'done' : num(st.eta_seconds) > 0 ? duration(num(st.eta_seconds)) : 'unknown';
  $('ips').textContent = fixed(st.images_per_sec, 0);
  const samples = st.samples || [];
  $('lr').textContent = samples.length ? num(samples[samples.length - 1].lr).toPrecision(3) : '-';
  $('restarts').textContent = st.restarts + ' / ' + st.max_restarts;
  $('loss').textContent = step > 0 ? fixed(st.loss, 4) : '-';
  $('accuracy').textContent = step > 0 ? fixed(st.accuracy, 4) : '-';
  const hist = st.history || [];
  const val = hist.filter((e) => num(e.val_accuracy) >= 0);
  $('val-accuracy').textContent = val.length ? fixed(val[val.length - 1].val_accuracy, 4) : '-';
  $('test-accuracy').textContent = st.has_result ? fixed(st.test_accuracy, 4) + ' (' + st.test_count + ')' : '-';
  $('last-checkpoint').textContent = st.last_checkpoint_time
    ? 'step ' + st.last_checkpoint_step + ', ' + duration((Date.now() - Date.parse(st.last_checkpoint_time)) / 1e3) + ' ago'
    : '-';

  // Train curves: the launcher's samples (one per 5 s, from before this page
  // opened) plus every step this page saw. A restart that went back in steps
  // drops the points after it.
  for (const s of samples) points.set(num(s.step), {step: num(s.step), loss: num(s.loss), accuracy: num(s.accuracy)});
  if (step > 0) points.set(step, {step, loss: num(st.loss), accuracy: num(st.accuracy)});
  for (const k of [...points.keys()]) if (k > step) points.delete(k);
  const pts = [...points.values()].sort((a, b) => a.step - b.step);
  chart('loss-chart', [
    {cls: 'train', pts: pts.map((p) => [p.step, p.loss])},
    {cls: 'val', dots: true, pts: val.map((e) => [num(e.step), num(e.val_loss)])},
  ], 'step');
  chart('accuracy-chart', [
    {cls: 'train', pts: pts.map((p) => [p.step, p.accuracy])},
    {cls: 'val', dots: true, pts: val.map((e) => [num(e.step), num(e.val_accuracy)])},
  ], 'step');
  const t0 = samples.length ? Date.parse(samples[samples.length - 1].time) : 0;
  chart('ips-chart', [{cls: 'train', pts: samples.map((s) => [(Date.parse(s.time) - t0) / 1e3, num(s.images_per_sec)])}], 's');

  fillTable('ranks', (st.rank_stats || []).map((r) => [
    r.rank || 0, r.host, ms(r.step_seconds), ms(r.data_seconds), ms(r.forward_backward_seconds),
    ms(r.allreduce_wait_seconds), ms(r.optimizer_seconds), (num(r.peak_rss_bytes) / 1048576).toFixed(1),
  ]));
  fillTable('restart-events', (st.restart_events || []).map((e) => [clock(e.time), e.attempt, e.step, e.reason]));
  fillTable('checkpoints', (st.checkpoints || []).slice().reverse().map((c) => [clock(c.time), c.step, c.path]));

  // How late this page shows a new step: from the launcher's update (when
  // rank 0's report arrived) to now, when it is on screen.
  if (step !== lastStep && st.update_time && st.update_time !== lastUpdate && lastStep >= 0) {
    lags.push(Date.now() - Date.parse(st.update_time));
    const sorted = lags.slice().sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)], max = sorted[sorted.length - 1];
    $('lag').textContent = 'median ' + med + ' ms, max ' + max + ' ms over ' + lags.length + ' new steps';
    $('lag').dataset.medianMs = String(med);
    $('lag').dataset.maxMs = String(max);
    $('lag').dataset.count = String(lags.length);
  }
  lastStep = step;
  lastUpdate = st.update_time;
}

async function poll() {
  try {
    const r = await fetch('/api/status', {cache: 'no-store'});
    if (!r.ok) throw new Error('HTTP ' + r.status);
    render(await r.json());
    $('conn').textContent = 'updated ' + new Date().toLocaleTimeString();
  } catch (e) {
    $('conn').textContent = 'launcher not reachable (' + e.message + ')';
  }
  setTimeout(poll, 500);  // a new step shows within ~0.5 s of reaching the launcher
}

async function control(what) {
  let token = $('token').value.trim();
  if (!token) token = (prompt('run token (runs/<name>/version_N/token)') || '').trim();
  if (!token) return;
  $('token').value = token;
  sessionStorage.setItem('dpcnn-token', token);
  if (what === 'stop' && !confirm('Stop the job after a checkpoint?')) return;
  try {
    const r = await fetch('/api/' + what, {method: 'POST', headers: {Authorization: 'Bearer ' + token}, body: what === 'stop' ? 'web page' : ''});
    const j = await r.json();
    $('control-result').textContent = r.status + ': ' + j.message;
  } catch (e) {
    $('control-result').textContent = e.message;
  }
}

$('stop-button').addEventListener('click', () => control('stop'));
$('checkpoint-button').addEventListener('click', () => control('checkpoint'));
poll();

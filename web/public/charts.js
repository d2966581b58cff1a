// fr web page, sensor history: one figure per sensor in each controller card. Numbers get a small
// uPlot chart (served by us from npm, loaded before this module as the global uPlot), strings a
// timeline of their changes. History comes from /api/history (bridge-php's history through
// frAroundWeb); live values from MQTT are added by app.js through chartLive(). Every figure has a
// text alternative: a summary sentence and a table of the newest values.

const RANGES = [['1h', '1 h', 3600e3], ['24h', '24 h', 86400e3], ['7d', '7 d', 604800e3], ['1y', '1 y', 31536e6]];
const ROWS_MAX = 100;       // rows of the values table (newest first)
const TIMELINE_MAX = 20;    // entries of a string sensor's timeline
const HEIGHT = 150;
const state = new WeakMap(); // figure -> {home, ctl, sensor, range, res, points, plot, kind, seq}

// The plots follow their card's width (a phone turned, a window resized).
const resize = new ResizeObserver((entries) => {
	for (const e of entries) {
		const s = state.get(e.target.closest('figure.chart'));
		const w = Math.floor(e.contentRect.width);
		if (s?.plot && w > 0 && Math.abs(s.plot.width - w) > 1) s.plot.setSize({ width: w, height: HEIGHT });
	}
});

function el(tag, attrs = {}, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === null || v === undefined || v === false) continue;
		if (k === 'class') e.className = v;
		else if (k.startsWith('data-')) e.dataset[k.slice(5)] = v;
		else e.setAttribute(k, v === true ? '' : v);
	}
	for (const c of children) if (c !== null && c !== undefined) e.append(c);
	return e;
}

const rangeOf = (key) => RANGES.find((r) => r[0] === key) || RANGES[1];
const fmtTime = (ms) => new Date(ms).toLocaleString();
const fmtNum = (v) => (typeof v === 'number' ? String(Math.round(v * 1000) / 1000) : String(v));
const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

function fmtStep(ms) {
	if (ms % 86400e3 === 0) return `${ms / 86400e3} d`;
	if (ms % 3600e3 === 0) return `${ms / 3600e3} h`;
	if (ms % 60e3 === 0) return `${ms / 60e3} min`;
	return `${Math.round(ms / 1000)} s`;
}

// --- the figure -------------------------------------------------------------------------------

function figureFor(card, home, ctl, sensor) {
	let fig = card.querySelector(`figure.chart[data-sensor="${CSS.escape(sensor)}"]`);
	if (fig) return fig;
	let box = card.querySelector('.charts');
	if (!box) {
		box = el('div', { class: 'charts' });
		card.querySelector('[data-field="sensors"]').after(box);
	}
	const capId = `ch-${home}-${ctl}-${sensor}`;
	const buttons = RANGES.map(([key, label]) => el('button', { type: 'button', 'data-range': key,
		'aria-pressed': key === '24h' ? 'true' : 'false', 'aria-label': `${sensor}: last ${label}` }, label));
	fig = el('figure', { class: 'chart', 'data-sensor': sensor, 'data-range': '24h', 'data-kind': 'unknown',
		'aria-labelledby': capId },
		el('figcaption', {}, el('span', { id: capId, class: 'chart-name' }, `${sensor}, history`),
			el('span', { class: 'ranges', role: 'group', 'aria-label': `Time range of ${sensor}` }, ...buttons)),
		el('div', { class: 'plot', role: 'img', 'aria-label': `${sensor}: loading history` }),
		el('ol', { class: 'timeline', 'aria-label': `${sensor}: changes, newest first` }),
		el('p', { class: 'chart-summary', 'data-field': 'summary' }, 'Loading history…'),
		el('details', { class: 'chart-data' }, el('summary', {}, `Values of ${sensor}`),
			el('table', {}, el('thead'), el('tbody'))));
	for (const b of buttons) b.addEventListener('click', () => load(fig, b.dataset.range));
	box.append(fig);
	resize.observe(fig.querySelector('.plot'));
	state.set(fig, { home, ctl, sensor, range: '24h', res: 'raw', points: [], plot: null, kind: 'unknown', seq: 0, early: [] });
	return fig;
}

function colors(fig) {
	const cs = getComputedStyle(fig);
	const v = (n, d) => cs.getPropertyValue(n).trim() || d;
	return { fg: v('--muted', '#4a5260'), line: v('--line', '#c9ced6'), accent: v('--accent', '#0b57d0') };
}

// --- drawing ----------------------------------------------------------------------------------

function kindOf(s, fig) {
	if (s.res !== 'raw') return 'numeric';
	if (s.points.some((p) => isNum(p[1]))) return 'numeric';
	if (s.points.length) return 'text';
	// Nothing recorded yet: the current value tells.
	const dd = fig.closest('article.ctl')?.querySelector(`.sensor[data-sensor="${CSS.escape(s.sensor)}"] [data-field="value"]`);
	const t = dd ? dd.textContent.trim() : '';
	return t === '' || t === '—' || !Number.isNaN(Number(t)) ? 'numeric' : 'text';
}

function plotData(s) {
	const xs = s.points.map((p) => p[0] / 1000);
	if (s.res === 'raw') return [xs, s.points.map((p) => (isNum(p[1]) ? p[1] : null))];
	return [xs, s.points.map((p) => p[1]), s.points.map((p) => p[2]), s.points.map((p) => p[3])];
}

function makePlot(fig, s) {
	const area = fig.querySelector('.plot');
	const c = colors(fig);
	const width = Math.max(200, Math.floor(area.clientWidth || fig.clientWidth || 300));
	const axis = { stroke: c.fg, grid: { stroke: c.line, width: 1 }, ticks: { stroke: c.line, width: 1 } };
	const series = [{}];
	const opts = { width, height: HEIGHT, legend: { show: false }, cursor: { drag: { x: false, y: false } },
		scales: { x: { time: true } }, axes: [axis, { ...axis, size: 48, space: 22 }], series };
	if (s.res === 'raw') {
		// A value holds until the next one (fr publishes on change): steps, not slopes.
		series.push({ label: s.sensor, stroke: c.accent, width: 2, spanGaps: false,
			paths: uPlot.paths.stepped({ align: 1 }), points: { show: s.points.length < 60 } });
	} else {
		series.push({ label: 'mean', stroke: c.accent, width: 2, points: { show: false } },
			{ label: 'min', stroke: c.fg, width: 1, dash: [4, 4], points: { show: false } },
			{ label: 'max', stroke: c.fg, width: 1, dash: [4, 4], points: { show: false } });
	}
	area.replaceChildren();
	s.plot = new uPlot(opts, plotData(s), area);
	s.plotRes = s.res === 'raw' ? 'raw' : 'buckets';
}

function describe(fig, s) {
	const [, label] = rangeOf(s.range);
	const summary = fig.querySelector('[data-field="summary"]');
	const nums = s.res === 'raw' ? s.points.map((p) => p[1]).filter(isNum) : s.points.flatMap((p) => [p[2], p[3]]);
	let text;
	if (!s.points.length) {
		text = `${s.sensor}, last ${label}: nothing recorded.`;
	} else if (s.kind === 'text') {
		const last = s.points[s.points.length - 1];
		text = `${s.sensor}, last ${label}: ${s.points.length} ${s.points.length === 1 ? "change" : "changes"}; now ${last[1]} since ${fmtTime(last[0])}.`;
	} else {
		const last = s.points[s.points.length - 1];
		const what = s.res === 'raw' ? `${s.points.length} readings` : `${s.points.length} averages of ${fmtStep(s.res)}`;
		text = `${s.sensor}, last ${label}: ${what}` +
			(nums.length ? `, lowest ${fmtNum(Math.min(...nums))}, highest ${fmtNum(Math.max(...nums))}` : '') +
			`; latest ${fmtNum(last[1])} at ${fmtTime(last[0])}.`;
	}
	summary.textContent = text;
	fig.querySelector('.plot').setAttribute('aria-label', text);
	// The values table: the newest first.
	const head = s.res === 'raw' ? ['Time', 'Value'] : ['From', 'Mean', 'Min', 'Max'];
	fig.querySelector('thead').replaceChildren(el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h))));
	const rows = s.points.slice(-ROWS_MAX).reverse().map((p) => el('tr', { 'data-ts': String(p[0]) },
		el('td', {}, el('time', { datetime: new Date(p[0]).toISOString() }, fmtTime(p[0]))),
		...p.slice(1).map((v) => el('td', {}, fmtNum(v)))));
	fig.querySelector('tbody').replaceChildren(...rows);
	fig.dataset.count = String(s.points.length);
}

function draw(fig) {
	const s = state.get(fig);
	s.kind = kindOf(s, fig);
	fig.dataset.kind = s.kind;
	fig.dataset.resolution = String(s.res);
	if (s.kind === 'text') {
		if (s.plot) { s.plot.destroy(); s.plot = null; }
		fig.querySelector('.plot').replaceChildren();
		fig.querySelector('.timeline').replaceChildren(...s.points.slice(-TIMELINE_MAX).reverse().map((p) =>
			el('li', {}, el('time', { datetime: new Date(p[0]).toISOString() }, fmtTime(p[0])), ' ',
				el('span', { class: 'tl-value' }, String(p[1])))));
	} else if (typeof uPlot === 'undefined') {
		fig.querySelector('.plot').replaceChildren(el('p', { class: 'notice' }, 'The chart library did not load; the values are below.'));
	} else if (s.plot && s.plotRes === (s.res === 'raw' ? 'raw' : 'buckets')) {
		s.plot.setData(plotData(s));
	} else {
		if (s.plot) s.plot.destroy();
		makePlot(fig, s);
	}
	describe(fig, s);
}

// --- loading and live updates -----------------------------------------------------------------

async function load(fig, range) {
	const s = state.get(fig);
	s.range = range;
	fig.dataset.range = range;
	for (const b of fig.querySelectorAll('.ranges button')) b.setAttribute('aria-pressed', b.dataset.range === range ? 'true' : 'false');
	const seq = ++s.seq;
	fig.dataset.loading = 'true';
	s.early = [];
	const width = fig.querySelector('.plot').clientWidth || 400;
	const q = new URLSearchParams({ home: s.home, ctl: s.ctl, sensor: s.sensor, range,
		points: String(Math.max(100, Math.min(1500, Math.round(width)))) });
	try {
		const r = await fetch(`/api/history?${q}`, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
		const body = await r.json().catch(() => ({}));
		if (seq !== s.seq) return; // another range was chosen meanwhile
		if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
		s.res = body.resolution;
		s.points = Array.isArray(body.points) ? body.points : [];
		// Live values that came while loading and were not written yet when it was read.
		for (const [ts, v] of s.early.splice(0)) {
			const last = s.points[s.points.length - 1];
			if (s.res !== 'raw' && !isNum(v)) continue;
			if (!last || ts > last[0]) s.points.push(s.res === 'raw' ? [ts, v] : [ts, v, v, v]);
		}
		s.from = body.from;
		draw(fig);
	} catch (e) {
		if (seq !== s.seq) return;
		fig.querySelector('[data-field="summary"]').textContent = `${s.sensor}: history not available (${e.message}).`;
	} finally {
		if (seq === s.seq) delete fig.dataset.loading;
	}
}

/** The history figure of a sensor of a controller card; made and loaded on first call. */
export function chartFor(card, home, ctl, sensor) {
	let fig = card.querySelector(`figure.chart[data-sensor="${CSS.escape(sensor)}"]`);
	if (fig) return fig;
	fig = figureFor(card, home, ctl, sensor);
	load(fig, '24h');
	return fig;
}

/** A live state value (from MQTT) for a sensor's figure. */
export function chartLive(card, sensor, value, ts) {
	const fig = card.querySelector(`figure.chart[data-sensor="${CSS.escape(sensor)}"]`);
	const s = fig && state.get(fig);
	if (!s || typeof ts !== 'number') return;
	if (fig.dataset.loading) {
		s.early.push([ts, value]);
		return;
	}
	const last = s.points[s.points.length - 1];
	if (last && ts <= last[0]) return; // already there (a retained value again, or older)
	if (s.res !== 'raw' && !isNum(value)) return; // strings are not in buckets
	s.points.push(s.res === 'raw' ? [ts, value] : [ts, value, value, value]);
	s.points = s.points.filter((p) => p[0] >= Date.now() - rangeOf(s.range)[2]);
	draw(fig);
}

// fr web page, live part: MQTT over wss (mqtt.js, served by us) straight to the broker with the
// user's own account, in the version frAroundWeb speaks with it (5, or 3.1.1); keeps statuses, sensors and controllers current (with each sensor's
// history chart, charts.js) and runs actions with progress and results. The server-rendered page (index.php) is the first paint; this only
// updates it, and builds cards for controllers that appear later. After every connect it asks each home for its whole state
// (fr/<home>/sync), so the truth does not depend on the broker's retained messages.
import mqtt from '/vendor/mqtt.esm.js';
import { chartFor, chartLive } from '/charts.js';

const app = document.getElementById('app');
const conn = document.getElementById('conn');
const cfg = app.dataset;
const prefix = cfg.prefix || 'fr';
const user = cfg.user;
const homes = (cfg.homes || '').split(',').filter(Boolean);
// The MQTT version, from the server (index.php asks frAroundWeb, which talks to the same
// broker): 5, or 4 = 3.1.1 (no response topic, no correlation data: replies come by reply_to
// and are matched by id). Unknown (frAroundWeb unreachable or not connected yet): 5, and 3.1.1
// when the broker closes an MQTT 5 connection before accepting it, as frMhs and frAroundWeb do.
const MQTT_VERSION = { 4: 4, 5: 5 }[cfg.mqttVersion] || 0;
// Requests follow the request profile of docs/topics.md, as frAroundWeb's relay (the shim's
// "request" op) does: reply topic fr/<home>/reply/<user>/<client>, this page being the client
// (8 random hex digits; subscribed before any request is sent, so no reply is missed).
const pageId = crypto.randomUUID().slice(0, 8);
const replyTopic = (home) => `${prefix}/${home}/reply/${user}/${pageId}`;
// How long a request's deadline comes before its caller gives up (the relay's
// RELAY_DEADLINE_MARGIN_S): frMhs's "offline" for a controller that stays away arrives first.
const DEADLINE_MARGIN_S = 2;
const pending = new Map(); // request id -> {form, home, ctl, action, sent, timer}
const SIMPLE_ALT = /^[A-Za-z0-9_.-]+(\|[A-Za-z0-9_.-]+)+$/;

function el(tag, attrs = {}, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs)) {
		if (v === null || v === undefined || v === false) continue;
		if (k === 'class') e.className = v;
		else if (k.startsWith('data-')) e.dataset[k.slice(5).replace(/-(.)/g, (_, c) => c.toUpperCase())] = v;
		else e.setAttribute(k, v === true ? '' : v);
	}
	for (const c of children) if (c !== null && c !== undefined) e.append(c);
	return e;
}

function fmtTime(ms) {
	if (typeof ms !== 'number') return '—';
	return new Date(ms).toLocaleString();
}

function fmtValue(v) {
	if (v === null || v === undefined) return '—';
	return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// --- connection indicator ---------------------------------------------------------------------

function setConn(state, text) {
	conn.dataset.state = state;
	conn.querySelector('.conn-text').textContent = text;
}

// --- DOM lookup and creation (mirrors index.php's markup) -------------------------------------

function homeEl(home) {
	let h = app.querySelector(`section.home[data-home="${CSS.escape(home)}"]`);
	if (!h) {
		h = el('section', { class: 'home', 'data-home': home, 'data-status': 'unknown', 'aria-labelledby': `h-${home}` },
			el('h2', { id: `h-${home}` }, `Home ${home} `, el('span', { class: 'badge', 'data-field': 'home-status' }, 'unknown'),
				' ', el('span', { class: 'reason', 'data-field': 'home-reason' })),
			el('div', { class: 'ctls' }));
		app.append(h);
	}
	return h;
}

function actionForm(home, ctl, a) {
	const fid = `a-${home}-${ctl}-${a.name}`;
	const args = el('div', { class: 'args' });
	for (const arg of a.args || []) {
		const id = `${fid}-${arg.name}`;
		const pat = arg.pattern || '';
		const def = arg.default !== undefined && arg.default !== null ? String(arg.default) : null;
		let input;
		if (SIMPLE_ALT.test(pat)) {
			input = el('select', { id, name: arg.name },
				...pat.split('|').map((c) => el('option', { selected: c === def }, c)));
		} else {
			input = el('input', { id, name: arg.name, type: 'text', autocomplete: 'off',
				pattern: pat || null, title: pat ? `must match ${pat}` : null,
				value: def, required: def === null });
		}
		args.append(el('div', { class: 'arg' }, el('label', { for: id }, arg.name), input));
	}
	const form = el('form', { class: 'action', 'data-action': a.name, 'data-timeout': String(a.timeout || 30) },
		el('fieldset', {}, el('legend', {}, a.name), args,
			el('button', { type: 'submit' }, `Run ${a.name}`),
			el('p', { class: 'progress', role: 'status', 'aria-live': 'polite', 'data-field': 'progress' }),
			el('div', { class: 'result', 'aria-live': 'polite', 'aria-atomic': 'true', 'data-field': 'result' })));
	form.addEventListener('submit', onSubmit);
	return form;
}

function ctlEl(home, ctl, info) {
	const h = homeEl(home);
	let c = h.querySelector(`article.ctl[data-ctl="${CSS.escape(ctl)}"]`);
	if (c || !info) return c;
	const hid = `c-${home}-${ctl}`;
	c = el('article', { class: 'ctl', 'data-ctl': ctl, 'data-status': 'unknown', 'aria-labelledby': hid },
		el('h3', { id: hid }, `${info.name || ctl} `, el('span', { class: 'id' }, ctl)),
		el('p', { class: 'state' }, el('span', { class: 'badge', 'data-field': 'status' }, 'unknown'), ' ',
			el('span', { class: 'reason', 'data-field': 'reason' })),
		el('p', { class: 'meta' }, 'Last seen ', el('time', { 'data-field': 'last-seen' }, '—')),
		el('dl', { class: 'sensors', 'data-field': 'sensors' }),
		el('div', { class: 'actions' }, ...(info.actions || []).map((a) => actionForm(home, ctl, a))));
	// Keep the cards in id order, as the server renders them.
	const after = [...h.querySelectorAll('article.ctl')].find((x) => x.dataset.ctl > ctl);
	h.querySelector('.ctls').insertBefore(c, after || null);
	for (const s of info.sensors || []) sensorEl(c, s.name);
	return c;
}

function sensorEl(c, name) {
	let s = c.querySelector(`.sensor[data-sensor="${CSS.escape(name)}"]`);
	if (!s) {
		s = el('div', { class: 'sensor', 'data-sensor': name }, el('dt', {}, name),
			el('dd', { 'data-field': 'value' }, '—'));
		c.querySelector('[data-field="sensors"]').append(s);
		chartFor(c, c.closest('section.home').dataset.home, c.dataset.ctl, name);
	}
	return s;
}

function setCtlStatus(c, status, reason) {
	c.dataset.status = status;
	c.querySelector('[data-field="status"]').textContent = status;
	if (reason !== undefined) c.querySelector('[data-field="reason"]').textContent = status === 'offline' ? (reason || '') : '';
}

// --- home liveness (docs/topics.md, fr/<home>/heartbeat) ----------------------------------------
// A home that sent heartbeats is stale once it missed STALE_AFTER of them (no beat for more than
// STALE_AFTER x the interval its last beat announced, by this page's clock), whatever its
// retained status says: a broker node that dies sends no will. Offline stays offline; a home
// that never beat has its retained status alone.
const STALE_AFTER = 3;
const live = new Map(); // home -> { status, beatAt (ms, page clock), interval (s; 0: stale until a beat) }

function liveOf(home) {
	let s = live.get(home);
	if (!s) {
		s = { status: null, beatAt: 0, interval: 0 };
		// The server rendered it stale ("no heartbeat for N s"): stale until a beat comes.
		const h = app.querySelector(`section.home[data-home="${CSS.escape(home)}"]`);
		const m = h && h.dataset.status === 'stale' && /(\d+) s$/.exec(h.querySelector('[data-field="home-reason"]')?.textContent || '');
		if (m) s.beatAt = Date.now() - Number(m[1]) * 1000;
		live.set(home, s);
	}
	return s;
}

function showHome(home) {
	const s = liveOf(home);
	const h = homeEl(home);
	let status = s.status ?? (h.dataset.status === 'stale' ? 'unknown' : h.dataset.status);
	let reason = '';
	const silent = Date.now() - s.beatAt;
	if (s.beatAt && status !== 'offline' && silent > STALE_AFTER * s.interval * 1000) {
		status = 'stale';
		reason = `no heartbeat for ${Math.floor(silent / 1000)} s`;
	}
	h.dataset.status = status;
	if (s.interval) h.dataset.heartbeat = String(s.interval);
	h.querySelector('[data-field="home-status"]').textContent = status;
	let r = h.querySelector('[data-field="home-reason"]');
	if (!r) h.querySelector('h2').append(' ', r = el('span', { class: 'reason', 'data-field': 'home-reason' }));
	r.textContent = reason;
}

for (const h of app.querySelectorAll('section.home[data-home]')) liveOf(h.dataset.home);
setInterval(() => { for (const home of live.keys()) if (live.get(home).beatAt) showHome(home); }, 1000);

// --- a home's state: what fr/<home>/ctl/<ctl>/info, .../status, .../state/<sensor> and a sync
// answer (below) say, applied the same way whichever brought it ------------------------------------

function applyInfo(home, ctl, info) {
	const c = ctlEl(home, ctl, info);
	if (!c) return;
	if (typeof info.online === 'boolean') setCtlStatus(c, info.online ? 'online' : 'offline', info.offline_reason);
	const t = c.querySelector('[data-field="last-seen"]');
	if (typeof info.last_seen === 'number') {
		t.textContent = fmtTime(info.last_seen);
		t.setAttribute('datetime', new Date(info.last_seen).toISOString());
	}
}

function applyCtlStatus(home, ctl, status) {
	const c = ctlEl(home, ctl, null);
	if (c) setCtlStatus(c, status);
}

// v: the state document {"value", "ts"} (anything else is shown as it is). The reading's ts is
// kept on the value (data-ts) for the sync answer's comparison.
function applyState(home, ctl, sensor, v) {
	const c = ctlEl(home, ctl, null);
	if (!c) return;
	const dd = sensorEl(c, sensor).querySelector('[data-field="value"]');
	dd.textContent = fmtValue(v && typeof v === 'object' && 'value' in v ? v.value : v);
	if (v && typeof v.ts === 'number') {
		dd.title = `read ${fmtTime(v.ts)}`;
		dd.dataset.ts = String(v.ts);
		chartLive(c, sensor, v.value, v.ts);
	} else {
		delete dd.dataset.ts;
	}
}

// --- fr/<home>/sync (docs/topics.md): the home's whole state after every connect ------------------
// Retained messages are only a fast path: RabbitMQ never sends them to wildcard subscriptions and
// keeps them per node, a broker without persistence forgets them. So once subscribed on a
// connection the page asks each home once (QoS 1, not retained) with a fresh id and its reply
// topic, and takes the answer as the home's state. No retry: a home that does not answer within
// SYNC_TIMEOUT_MS (frMhs down: its will or stale heartbeat says so) is asked again at the next
// connect only, so a flapping connection costs one request per home per connect, never more.
const SYNC_TIMEOUT_MS = 10_000;
const NAME = /^[A-Za-z0-9_-]{1,63}$/;
let syncs = new Map(); // home -> { id, state: 'asked' | 'done' | 'none', timer }, this connection's

function syncMark(home, state) {
	homeEl(home).dataset.sync = state;
}

// granted: the SUBACK's grants ({topic, qos}); a home whose reply topic the broker refused could
// not get its answer, so it is not asked.
function syncAll(granted) {
	syncEnd();
	syncs = new Map();
	const refused = new Set(granted.filter((g) => g.qos >= 128).map((g) => g.topic));
	// One id per connection (the reply topic names the home): an answer with another id is
	// to an earlier connection's request.
	const id = `sync-${crypto.randomUUID()}`;
	for (const home of homes) {
		if (refused.has(replyTopic(home))) continue;
		const s = { id, state: 'asked', timer: null };
		s.timer = setTimeout(() => {
			if (s.state !== 'asked') return;
			s.state = 'none';
			syncMark(home, 'no answer');
		}, SYNC_TIMEOUT_MS);
		syncs.set(home, s);
		syncMark(home, 'asked');
		const opts = { qos: 1, retain: false };
		if (client.options.protocolVersion === 5) {
			opts.properties = { responseTopic: replyTopic(home), correlationData: new TextEncoder().encode(id) };
		}
		client.publish(`${prefix}/${home}/sync`, JSON.stringify({ id, reply_to: replyTopic(home) }), opts);
	}
}

// The connection is gone: its unanswered requests never will be (a clean session).
function syncEnd() {
	for (const [home, s] of syncs) {
		clearTimeout(s.timer);
		if (s.state === 'asked') {
			s.state = 'none';
			syncMark(home, 'no answer');
		}
	}
}

// What may be newer than the answer, and so must not be overwritten by it:
// - a sensor value: its reading's ts is in both (frMhs's clock both times), the newer one stays;
// - a controller's status and info, the home's status: they carry no time of their change, so the
//   order decides. frMhs publishes them and the answer on one connection, and the broker hands one
//   publisher's QoS 1 messages to a subscriber in order (MQTT promises it per topic; Mosquitto
//   keeps one queue per client, RabbitMQ one per client and QoS, and the page takes all of these
//   and its reply topic at QoS 1), so what came before the answer was published before it, and
//   what comes after was published after it and wins in onMessage as usual;
// - a retained copy arriving after the answer (the broker's store as of the subscription, made
//   before the request): older, dropped in onMessage;
// - an answer to an earlier connection's request (a late one: the same reply topic) or a second
//   copy of this one: older than everything since, dropped here.
function onSync(home, doc, id) {
	const s = syncs.get(home);
	if (!s || s.state !== 'asked' || id !== s.id || doc.home !== home) return;
	clearTimeout(s.timer);
	s.state = 'done';
	// The home answered just now: alive, which is what a heartbeat says too.
	const l = liveOf(home);
	if (typeof doc.status === 'string') l.status = doc.status;
	const iv = doc.heartbeat_interval;
	if (typeof iv === 'number' && iv >= 1 && iv <= 3600) Object.assign(l, { beatAt: Date.now(), interval: iv });
	else if (iv === 0) Object.assign(l, { beatAt: 0, interval: 0 }); // a home that does not beat
	showHome(home);
	for (const c of Array.isArray(doc.controllers) ? doc.controllers : []) {
		if (!c || typeof c.id !== 'string' || !NAME.test(c.id)) continue;
		if (c.info && typeof c.info === 'object') applyInfo(home, c.id, c.info);
		if (typeof c.status === 'string') applyCtlStatus(home, c.id, c.status);
		const card = ctlEl(home, c.id, null);
		if (!card || !c.states || typeof c.states !== 'object') continue;
		for (const [sensor, v] of Object.entries(c.states)) {
			if (!NAME.test(sensor) || typeof v?.ts !== 'number') continue;
			const shown = card.querySelector(`.sensor[data-sensor="${CSS.escape(sensor)}"] [data-field="value"]`);
			if (shown?.dataset.ts && Number(shown.dataset.ts) >= v.ts) continue;
			applyState(home, c.id, sensor, v);
		}
	}
	syncMark(home, 'ok');
}

// --- incoming messages ----------------------------------------------------------------------

function onMessage(topic, payload, packet) {
	const parts = topic.split('/');
	if (parts[0] !== prefix || parts.length < 3) return;
	const home = parts[1];
	const text = new TextDecoder().decode(payload);
	if (parts.length === 3 && parts[2] === 'heartbeat') {
		if (packet?.retain) return; // an old beat (frMhs never retains them) says nothing of now
		let b;
		try { b = JSON.parse(text); } catch { return; }
		if (!(typeof b?.interval === 'number' && b.interval >= 1 && b.interval <= 3600)) return;
		Object.assign(liveOf(home), { beatAt: Date.now(), interval: b.interval });
		showHome(home);
		return;
	}
	if (parts[2] === 'reply') {
		onReply(home, text, packet);
		return;
	}
	// Retained copies come from the broker's store as of the subscription; after this
	// connection's sync answer they are older than it (onSync).
	if (packet?.retain && syncs.get(home)?.state === 'done') return;
	if (parts.length === 3 && parts[2] === 'status') {
		liveOf(home).status = text;
		showHome(home);
		return;
	}
	if (parts[2] !== 'ctl' || parts.length < 5) return;
	const ctl = parts[3];
	const kind = parts[4];
	if (kind === 'info') {
		let info;
		try { info = JSON.parse(text); } catch { return; }
		if (info && typeof info === 'object') applyInfo(home, ctl, info);
	} else if (kind === 'status') {
		applyCtlStatus(home, ctl, text);
	} else if (kind === 'state' && parts.length === 6) {
		let v;
		try { v = JSON.parse(text); } catch { v = { value: text }; }
		applyState(home, ctl, parts[5], v);
	}
}

// --- requests ---------------------------------------------------------------------------------

const STEPS = ['sent', 'accepted', 'started', 'result'];

function showProgress(p, step, extra) {
	const i = STEPS.indexOf(step);
	const txt = STEPS.slice(0, i + 1).join(' → ');
	const out = p.form.querySelector('[data-field="progress"]');
	out.textContent = extra ? `${txt} (${extra})` : txt;
	p.form.dataset.step = step;
}

function showResult(p, r) {
	const box = p.form.querySelector('[data-field="result"]');
	box.replaceChildren();
	const dl = el('dl', { class: 'res' });
	const add = (k, v) => { if (v !== null && v !== undefined && v !== '') dl.append(el('dt', {}, k), el('dd', {}, String(v))); };
	add('status', r.status);
	add('exit code', r.exit_code);
	add('signal', r.signal);
	add('duration', typeof r.duration_ms === 'number' ? `${r.duration_ms} ms` : null);
	add('reason', r.reason);
	if (r.duplicate) add('note', 'answer to a repeated request (the first run\'s result)');
	box.append(dl);
	const tail = (s) => (s || '').slice(-400);
	if (r.stdout) box.append(el('pre', { class: 'out', 'aria-label': 'output' }, tail(r.stdout)));
	if (r.stderr) box.append(el('pre', { class: 'err', 'aria-label': 'error output' }, tail(r.stderr)));
	box.dataset.status = r.status;
}

// The profile's request document (relay_command in agents/frAroundWeb/relay.c): a request that
// waits `wait` seconds for its result gets the deadline now + max(wait - margin, wait / 2).
function requestDoc(id, action, args, wait, replyTo) {
	const deadline = Date.now() / 1000 + Math.max(wait - DEADLINE_MARGIN_S, wait / 2);
	return { id, action, args, deadline, reply_to: replyTo, progress: true };
}

// Replies are matched by their correlation data (MQTT 5), else by their id (MQTT 3.1.1); only
// accepted, started and result mean something to a request, sync to a sync request.
function onReply(home, text, packet) {
	let m;
	try { m = JSON.parse(text); } catch { return; }
	if (!m || typeof m !== 'object') return;
	let id = m.id;
	const cd = packet?.properties?.correlationData;
	if (cd) id = new TextDecoder().decode(cd);
	if (m.type === 'sync') {
		onSync(home, m, id);
		return;
	}
	const p = pending.get(id);
	if (!p) return;
	if (m.type === 'accepted' || m.type === 'started') {
		showProgress(p, m.type, m.type === 'started' && m.pid ? `pid ${m.pid}` : null);
		return;
	}
	if (m.type !== 'result') return;
	pending.delete(id);
	clearTimeout(p.timer);
	showProgress(p, 'result', m.status);
	showResult(p, m);
	p.form.querySelector('button[type="submit"]').disabled = false;
}

function onSubmit(ev) {
	ev.preventDefault();
	const form = ev.currentTarget;
	if (!form.reportValidity()) return;
	const home = form.closest('section.home').dataset.home;
	const ctl = form.closest('article.ctl').dataset.ctl;
	const action = form.dataset.action;
	const args = {};
	for (const f of form.querySelectorAll('input[name], select[name]')) args[f.name] = f.value;
	const id = crypto.randomUUID();
	const p = { form, home, ctl, action, sent: Date.now(), timer: null };
	pending.set(id, p);
	form.querySelector('[data-field="result"]').replaceChildren();
	showProgress(p, 'sent');
	form.querySelector('button[type="submit"]').disabled = true;
	// The page waits the action's own timeout and 20 s more for the result; the request's
	// deadline comes from that wait, so a request stuck in an outage never switches a relay
	// after the page stopped waiting (topics.md).
	const wait = (parseFloat(form.dataset.timeout) || 30) + 20;
	const req = requestDoc(id, action, args, wait, replyTopic(home));
	p.timer = setTimeout(() => {
		if (!pending.has(id)) return;
		showProgress(p, form.dataset.step || 'sent', `no result after ${Math.round(wait)} s yet`);
		form.querySelector('button[type="submit"]').disabled = false;
	}, wait * 1000);
	const opts = { qos: 1, retain: false };
	if (client.options.protocolVersion === 5) {
		opts.properties = { responseTopic: replyTopic(home), correlationData: new TextEncoder().encode(id) };
	}
	client.publish(`${prefix}/${home}/ctl/${ctl}/cmd`, JSON.stringify(req), opts, (err) => {
		if (err) showProgress(p, 'sent', `not sent: ${err.message}`);
	});
}

for (const f of document.querySelectorAll('form.action')) f.addEventListener('submit', onSubmit);
// Each sensor the server rendered gets its history figure.
for (const s of document.querySelectorAll('article.ctl .sensor[data-sensor]')) {
	const c = s.closest('article.ctl');
	chartFor(c, c.closest('section.home').dataset.home, c.dataset.ctl, s.dataset.sensor);
}

// --- the connection -----------------------------------------------------------------------------

const client = mqtt.connect(`wss://${location.host}/mqtt`, {
	protocolVersion: MQTT_VERSION || 5,
	username: user,
	password: cfg.secret,
	clientId: `web-${user}-${pageId}`,
	clean: true,
	keepalive: 30,
	reconnectPeriod: 1000,
	connectTimeout: 10000,
	resubscribe: false,
});

let accepted = false; // a CONNACK came on some connection
client.on('connect', () => {
	accepted = true;
	conn.dataset.mqtt = client.options.protocolVersion === 4 ? '3.1.1' : '5';
	const subs = {};
	for (const home of homes) {
		for (const t of ['status', 'ctl/+/status', 'ctl/+/info', 'ctl/+/state/+']) subs[`${prefix}/${home}/${t}`] = { qos: 1 };
		subs[`${prefix}/${home}/heartbeat`] = { qos: 0 };
		subs[replyTopic(home)] = { qos: 1 };
	}
	// The sync requests go out once the reply topics are subscribed, so no answer is missed.
	client.subscribe(subs, (err, granted) => {
		if (err) {
			setConn('down', `Live updates: subscribe failed (${err.message})`);
			return;
		}
		setConn('up', 'Live updates: connected');
		syncAll(granted || []);
	});
});
client.on('reconnect', () => setConn('connecting', 'Live updates: reconnecting…'));
client.on('close', () => {
	syncEnd();
	if (!MQTT_VERSION && !accepted && client.options.protocolVersion === 5) {
		// Closed before any CONNACK with the version unknown: a broker without MQTT 5
		// (RabbitMQ) does that; the reconnect speaks 3.1.1.
		client.options.protocolVersion = 4;
	}
	if (conn.dataset.state === 'up') setConn('down', 'Live updates: disconnected, reconnecting…');
});
client.on('offline', () => setConn('down', 'Live updates: disconnected, reconnecting…'));
client.on('error', (err) => {
	const auth = err && (err.code === 134 || err.code === 135 || err.code === 4 || err.code === 5);
	setConn('down', auth ? 'Live updates: the broker refused the sign-in' : `Live updates: ${err.message}`);
});
client.on('message', onMessage);

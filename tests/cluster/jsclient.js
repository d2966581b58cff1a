#!/usr/bin/env node
// MQTT 3.1.1 clients made with mqtt.js (the library the web page uses, web/node_modules/mqtt)
// over a broker's MQTT-over-WebSocket listener, for the cluster stage. Each mode prints READY,
// progress lines and one RESULT line of JSON; every wait is bounded.
//
//   requests URL TOPIC N   fr commands {"id": PREFIX<i>, "action": "rec", "args": {"tag":
//                          PREFIX<i>}, "reply_to": REPLY, "progress": true} at RATE per second
//                          (QoS 1; SENT i after each PUBACK), subscribed (QoS 1) to REPLY first;
//                          every reply appended to ANSWERS as "<unix s> <payload>"; then waits
//                          up to BOUND s for the final answers; RETRY s: an id with no final
//                          answer that long after it was asked is asked again (the same id)
//   page URL HOME CTL      what the web page does on connect (docs/topics.md, "fr/<home>/sync"):
//                          subscribes fr/HOME/# (QoS 1; a RabbitMQ never sends retained messages
//                          to it), then asks fr/HOME/sync with reply_to; keeps the home's and
//                          CTL's status from the sync answer and the live messages, and reports
//                          when both were known online (TRUE <unix ms>), within BOUND s; with
//                          WATCH (a file name) it goes on, printing each status and heartbeat
//                          with its time (HOME, CTL, BEAT lines), until that file exists
//
// Options as environment variables: FR_USER, FR_PW_FILE, FR_CLIENT_ID, REPLY, PREFIX, RATE,
// BOUND, ANSWERS, RETRY; MQTT_JS (the mqtt module's directory).
'use strict';
const fs = require('fs');
const mqtt = require(process.env.MQTT_JS);

const env = (k, d) => (process.env[k] === undefined || process.env[k] === '' ? d : process.env[k]);
const now = () => Date.now();
const out = (tag, o) => console.log(tag + ' ' + JSON.stringify(o));
const [mode, url, ...rest] = process.argv.slice(2);
const bound = Number(env('BOUND', 60)) * 1000;

function connect() {
	return mqtt.connect(url, {
		protocolVersion: 4, // what the page speaks to a broker without MQTT 5 (docs/web.md)
		clientId: env('FR_CLIENT_ID', `${env('FR_USER')}:js${process.pid}`),
		username: env('FR_USER'),
		password: fs.readFileSync(env('FR_PW_FILE'), 'utf8').trim(),
		clean: true,
		keepalive: 10,
		reconnectPeriod: 200, // the page reconnects; a clean session subscribes again
		connectTimeout: 10000,
	});
}

function requests(topic, n) {
	const reply = env('REPLY');
	const prefix = env('PREFIX', 'j');
	const rate = Number(env('RATE', 5));
	const retry = Number(env('RETRY', 0)) * 1000;
	const ans = fs.openSync(env('ANSWERS'), 'a');
	const ids = Array.from({ length: n }, (_, i) => prefix + i);
	const finals = new Map();
	const asked = new Map();
	let acked = 0, retried = 0, connects = 0, started = false;
	const c = connect();
	const t0 = now();
	const give = setTimeout(() => finish('bound'), bound + n * 1000 / rate);

	c.on('message', (t, payload) => {
		fs.writeSync(ans, `${(now() / 1000).toFixed(6)} ${payload.toString()}\n`);
		let p;
		try { p = JSON.parse(payload.toString()); } catch (e) { return; }
		if (p && p.type === 'result' && asked.has(p.id)) {
			if (!finals.has(p.id)) finals.set(p.id, []);
			finals.get(p.id).push(p);
			if (ids.every((id) => outcome(id)) && !c._frDone) { c._frDone = true; setTimeout(() => finish('all'), 1000); }
		}
	});
	// The outcome: the first final answer without "retry": true (docs/topics.md, Replies).
	const outcome = (id) => (finals.get(id) || []).find((f) => f.retry !== true);
	let retriedAfterRetry = 0;
	const ask = (id, i) => {
		asked.set(id, now());
		const req = { id, action: 'rec', args: { tag: id }, reply_to: reply, progress: true };
		c.publish(topic, JSON.stringify(req), { qos: 1 }, (err) => {
			if (!err && i !== undefined) { acked++; console.log('SENT ' + i); }
		});
	};
	c.on('connect', () => {
		connects++;
		if (connects > 1) return; // mqtt.js subscribes again by itself (resubscribe)
		c.subscribe(reply, { qos: 1 }, (err, granted) => {
			if (err || !granted || granted[0].qos !== 1) { out('RESULT', { error: String(err), granted }); process.exit(1); }
			if (started) return;
			started = true;
			console.log('READY');
			let i = 0;
			const tick = setInterval(() => {
				if (i >= n) { clearInterval(tick); return; }
				ask(ids[i], i);
				i++;
			}, 1000 / rate);
		});
	});
	// Asked again, the same id (never runs twice): an id whose answers all said "retry": true
	// after 1 s; with RETRY, one without any answer after that long.
	setInterval(() => {
		if (!c.connected) return;
		for (const id of ids) {
			if (!asked.has(id) || outcome(id)) continue;
			if (finals.has(id) && now() - asked.get(id) > 1000) { ask(id); retriedAfterRetry++; }
			else if (!finals.has(id) && retry > 0 && now() - asked.get(id) > retry) { ask(id); retried++; }
		}
	}, 200);
	function finish(why) {
		clearTimeout(give);
		const extra = [];
		const statuses = {};
		for (const id of ids) {
			const o = outcome(id);
			if (o) statuses[o.status] = (statuses[o.status] || 0) + 1;
			extra.push(...(finals.get(id) || []).filter((f) => f !== o));
		}
		const missing = ids.filter((id) => !outcome(id));
		out('RESULT', {
			sent: n, puback: acked, answered: n - missing.length, missing: missing.length,
			missing_first: missing.slice(0, 5), statuses, extra_answers: extra.length,
			// not marked duplicate or retry, and not the same message again (QoS 1 redelivery)
			extra_not_marked_duplicate: [...finals.entries()].reduce((n, [id, v]) => n + v.filter((f, i) =>
				f !== outcome(id) && f.duplicate !== true && f.retry !== true &&
				!v.slice(0, i).some((g) => JSON.stringify(g) === JSON.stringify(f))).length, 0),
			retried, retried_after_retry: retriedAfterRetry, connects, ended: why, answers_s: ((now() - t0) / 1000).toFixed(2),
		});
		c.end(true, () => process.exit(0));
		setTimeout(() => process.exit(0), 2000);
	}
}

function page(home, ctl) {
	const reply = `fr/${home}/reply/${env('FR_USER')}/page-${process.pid}`;
	const st = { home: null, ctl: null, heartbeats: 0, sync: null };
	const t0 = now();
	let connects = 0, trueAt = null;
	const c = connect();
	const give = setTimeout(() => finish(), bound);
	// WATCH: keep watching (printing HOME, CTL and BEAT lines with their time) until that file
	// exists, instead of ending once the status is known.
	const watch = env('WATCH', '');
	if (watch) {
		const poll = setInterval(() => { if (fs.existsSync(watch)) { clearInterval(poll); finish(); } }, 100);
	}
	const check = () => {
		if (trueAt === null && st.home === 'online' && st.ctl === 'online') {
			trueAt = now();
			console.log('TRUE ' + trueAt);
			if (!watch) setTimeout(finish, 500);
		}
	};
	c.on('connect', () => {
		connects++;
		console.log('CONNECTED ' + now());
		c.subscribe(`fr/${home}/#`, { qos: 1 }, (err) => {
			if (err) { out('RESULT', { error: String(err) }); process.exit(1); }
			// The reply topic is inside fr/<home>/#: subscribed before the request is sent.
			c.publish(`fr/${home}/sync`, JSON.stringify({ id: `page-${process.pid}-${connects}`, reply_to: reply }), { qos: 1 });
			console.log('SYNC ' + now());
		});
	});
	c.on('message', (t, payload) => {
		const s = payload.toString();
		if (t === `fr/${home}/status`) { st.home = s; console.log(`HOME ${s} ${now()}`); }
		else if (t === `fr/${home}/ctl/${ctl}/status`) { st.ctl = s; console.log(`CTL ${s} ${now()}`); }
		else if (t === `fr/${home}/heartbeat`) { st.heartbeats++; console.log(`BEAT ${now()}`); }
		else if (t === reply) {
			let p;
			try { p = JSON.parse(s); } catch (e) { return; }
			if (p.type !== 'sync') return;
			st.sync = now();
			st.home = p.status;
			const cc = (p.controllers || []).find((x) => x.id === ctl);
			if (cc) st.ctl = cc.status;
			console.log('SYNCED ' + st.sync);
		}
		check();
	});
	let ended = false;
	function finish() {
		if (ended) return;
		ended = true;
		clearTimeout(give);
		out('RESULT', {
			home: st.home, ctl: st.ctl, true_at_ms: trueAt, sync_answer_ms: st.sync,
			heartbeats: st.heartbeats, connects, started_ms: t0,
		});
		c.end(true, () => process.exit(0));
		setTimeout(() => process.exit(0), 2000);
	}
}

if (mode === 'requests') requests(rest[0], Number(rest[1]));
else if (mode === 'page') page(rest[0], rest[1]);
else { console.error('usage: jsclient.js requests URL TOPIC N | page URL HOME CTL'); process.exit(2); }

// mqtt.js (web/node_modules/mqtt, the page's client) as a requester, for the conformance suite.
//   node mqttjs.cjs URL USER PASSWORD CMD_TOPIC RESPONSE_TOPIC CORRELATION BODY_JSON [CA_FILE [COOKIE]]
// COOKIE (name=value) goes with the websocket upgrade: nginx's /mqtt wants a signed-in page
// session (docs/web.md). Connects with MQTT 5 (MQTTJS_VERSION=4: 3.1.1, as the page does when
// frAroundWeb speaks it) as client id USER:js-<random> (docs/broker.md), subscribes to
// fr/<home>/status and RESPONSE_TOPIC, publishes BODY_JSON to CMD_TOPIC (QoS 1; on MQTT 5 with
// response topic + correlation data) and prints every message it receives as one JSON line,
// until the final result (exit 0) or 20 s (exit 2); an error is printed and exits 3.
'use strict';
const fs = require('fs');
const mqtt = require(process.env.FR_SRC + '/web/node_modules/mqtt');

const [url, user, pw, topic, rt, corr, body, ca, cookie] = process.argv.slice(2);
const home = topic.split('/')[1];
const version = process.env.MQTTJS_VERSION === '4' ? 4 : 5;
const opts = { username: user, password: pw, protocolVersion: version, reconnectPeriod: 0, connectTimeout: 10000,
	clientId: `${user}:js-${Math.random().toString(16).slice(2, 10)}` };
if (ca) opts.ca = fs.readFileSync(ca);
if (cookie) opts.wsOptions = { headers: { Cookie: cookie } };
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const timer = setTimeout(() => { out({ error: 'no final result within 20 s' }); process.exit(2); }, 20000);
const c = mqtt.connect(url, opts);
let done = false;
// Errors after the final result (a PUBACK written while end() closes the socket: EPIPE) are ours.
c.on('error', (e) => { if (done) return; out({ error: String(e) }); process.exit(3); });
let connected = false;
// A refused websocket upgrade (nginx's 403) reaches mqtt.js as a close without an error.
c.on('close', () => { if (!connected && !done) { out({ error: 'connection closed before CONNACK' }); process.exit(3); } });
c.on('connect', () => {
	connected = true;
	c.subscribe([`fr/${home}/status`, rt], { qos: 1 }, (err) => {
		if (err) { out({ error: 'subscribe: ' + err }); process.exit(3); }
		const po = { qos: 1 };
		if (version === 5) po.properties = { responseTopic: rt, correlationData: Buffer.from(corr) };
		c.publish(topic, body, po,
			(e) => { if (e) { out({ error: 'publish: ' + e }); process.exit(3); } });
	});
});
c.on('message', (t, payload, packet) => {
	const p = packet.properties || {};
	out({ topic: t, payload: payload.toString(), qos: packet.qos, retain: packet.retain,
		corr: p.correlationData ? p.correlationData.toString() : null });
	let j = null;
	try { j = JSON.parse(payload.toString()); } catch (e) { /* plain text status */ }
	if (t === rt && j && j.type === 'result') {
		clearTimeout(timer);
		done = true;
		c.end(false, {}, () => process.exit(0));
	}
});

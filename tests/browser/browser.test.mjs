// Browser test: the whole demo stack (tests/demo/demo.sh on free loopback ports, its own state
// dir) driven through Debian's chromium by playwright-core: sign in, live statuses and sensors,
// an action with its real result, a controller killed and restarted, the broker restarted, the
// page's fr/<home>/sync after a reconnect, the page on MQTT 3.1.1 (the version frAroundWeb speaks;
// its own fall back on a RabbitMQ node).
// Screenshots go to FR_ARTIFACTS (default tests/browser/artifacts/); FR_README_SCREENSHOT=1 also
// refreshes docs/screenshot.png.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, copyFileSync, existsSync, writeFileSync, openSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { randomBytes, randomUUID } from 'node:crypto';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '../..');
const DEMO = join(ROOT, 'tests/demo/demo.sh');
const BIN = process.env.FR_BIN || join(ROOT, 'build/bin');
const ART = process.env.FR_ARTIFACTS || join(HERE, 'artifacts');
const CHROMIUM = process.env.FR_CHROMIUM || '/usr/bin/chromium';
const STEP = 45_000; // the longest any single expectation may take

let dir, env, demo, demoOut = '', ctx, page, url, password, brokerPort, shimPort, wsPort;
const cspViolations = [];

// A port free for TCP and UDP on 127.0.0.1 (the announce port is UDP), below the kernel's
// ephemeral range and never one handed out before in this run: tests/tools/free_port.py, the
// one picker of the tests (it says why).
const PORTS_DIR = mkdtempSync(join(tmpdir(), 'fr-browser-ports-'));
const PORTS_USED = join(PORTS_DIR, 'ports');
process.on('exit', () => rmSync(PORTS_DIR, { recursive: true, force: true }));
async function freePort() {
	const r = spawnSync('python3', [join(ROOT, 'tests/tools/free_port.py'), PORTS_USED], { encoding: 'utf8' });
	if (r.status !== 0) throw new Error(`free_port.py: ${r.stderr}`);
	return Number(r.stdout.trim());
}

function pids() {
	const m = new Map();
	for (const line of readFileSync(join(dir, 'pids'), 'utf8').split('\n')) {
		const [name, pid] = line.trim().split(/\s+/);
		if (name && pid) m.set(name, Number(pid));
	}
	return m;
}

function demoRestart(name) {
	const r = spawnSync('bash', [DEMO, 'restart', name], { env, encoding: 'utf8', timeout: 30_000 });
	assert.equal(r.status, 0, `demo.sh restart ${name}: ${r.stdout}${r.stderr}`);
}

async function shot(name) {
	mkdirSync(ART, { recursive: true });
	await page.screenshot({ path: join(ART, `${name}.png`), fullPage: true });
}

const ctl = (id) => page.locator(`article.ctl[data-ctl="${id}"]`);

// test() that remembers a failure, so after() keeps the state dir and prints the daemons' logs.
let failed = false;
function step(name, fn) {
	test(name, async () => {
		try {
			await fn();
		} catch (e) {
			failed = true;
			if (page) await shot(`failed-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`).catch(() => {});
			throw e;
		}
	});
}

before(async () => {
	try {
		// 09-browser.sh names the dir so it can stop the demo even if this process is killed.
		dir = process.env.FR_BROWSER_STATE || mkdtempSync(join(tmpdir(), 'fr-browser-'));
		mkdirSync(dir, { recursive: true });
		const ports = {};
		// A free port is only free until someone binds it: with the other tests running beside
		// this one, a daemon of the demo can lose its port in between. demo.sh then exits
		// (it checks that everything it started still runs); start again on new ports, twice
		// at most.
		for (let attempt = 1; ; attempt++) {
			for (const k of ['HTTPS', 'HTTP', 'BROKER', 'MQTTS', 'WS', 'ANNOUNCE', 'LINK', 'SHIM', 'METRICS']) ports[k] = await freePort();
			// Heartbeats every 2 s: the page marks the home stale after 3 missed ones (6 s).
			env = { ...process.env, FR_DEMO_DIR: dir, FR_DEMO_BIN: BIN, FR_DEMO_READY_TIMEOUT: '60',
				FR_DEMO_HEARTBEAT: '2' };
			for (const [k, v] of Object.entries(ports)) env[`FR_DEMO_${k}_PORT`] = String(v);
			demoOut = '';
			demo = spawn('bash', [DEMO], { env, stdio: ['ignore', 'pipe', 'pipe'] });
			demo.stdout.on('data', (d) => { demoOut += d; });
			demo.stderr.on('data', (d) => { demoOut += d; });
			const started = await new Promise((res, rej) => {
				const t = setTimeout(() => rej(new Error(`demo not ready after 120 s:\n${demoOut}`)), 120_000);
				const check = () => { if (demoOut.includes('fr demo is running')) { clearTimeout(t); res(true); } };
				demo.stdout.on('data', check);
				demo.once('exit', (code) => {
					clearTimeout(t);
					if (attempt < 3 && /Address already in use/.test(demoOut)) res(false);
					else rej(new Error(`demo.sh exited ${code}:\n${demoOut}`));
				});
				check();
			});
			if (started)
				break;
			console.error(`demo start ${attempt} lost a port to another process; new ports:\n${demoOut}`);
		}
		password = readFileSync(join(dir, 'demo.password'), 'utf8').trim();
		url = `https://localhost:${ports.HTTPS}/`;
		brokerPort = ports.BROKER;
		wsPort = ports.WS;
		shimPort = ports.SHIM;
		ctx = await chromium.launchPersistentContext(join(dir, 'chromium-profile'), {
			executablePath: CHROMIUM,
			headless: true,
			ignoreHTTPSErrors: true,
			viewport: { width: 1100, height: 760 },
			args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
				'--disable-background-networking', '--disable-component-update', '--disable-sync'],
			timeout: 60_000,
		});
		page = ctx.pages()[0] || await ctx.newPage();
		page.setDefaultTimeout(STEP);
		page.on('console', (m) => { if (m.type() === 'error') console.error(`[page] ${m.text()}`); });
		page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
		page.on('console', (m) => { if (/Content.Security.Policy/i.test(m.text())) cspViolations.push(m.text()); });
	} catch (e) {
		failed = true;
		throw e;
	}
});

after(async () => {
	if (ctx) await ctx.close().catch(() => {});
	if (demo && demo.exitCode === null) {
		demo.kill('SIGTERM');
		await new Promise((res) => {
			const t = setTimeout(res, 20_000);
			demo.once('exit', () => { clearTimeout(t); res(); });
		});
	}
	// Whatever demo.sh could not stop (it was killed itself, say): stop it here.
	if (dir && existsSync(join(dir, 'pids'))) {
		for (const pid of pids().values()) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
	}
	if (failed && dir) {
		for (const f of ['frMhs', 'hall', 'mosquitto', 'frAroundWeb', 'nginx-error', 'php-fpm-error', 'php']) {
			const p = join(dir, 'logs', `${f}.log`);
			if (existsSync(p)) console.error(`----- ${f}.log -----\n${readFileSync(p, 'utf8').slice(-4000)}`);
		}
		console.error(`demo output:\n${demoOut}\n(state kept in ${dir})`);
		return;
	}
	if (dir && !process.env.FR_BROWSER_STATE) rmSync(dir, { recursive: true, force: true });
});

step('sign-in is refused with a wrong password', async () => {
	await page.goto(url);
	await page.getByLabel('User name').fill('demo');
	await page.getByLabel('Password').fill('not-the-password');
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.getByRole('alert').filter({ hasText: 'Wrong user name or password' }).waitFor();
	await shot('01-signin-refused');
});

step('sign in: three controllers online with sensor values, first paint from the server', async () => {
	await page.goto(url);
	await page.getByLabel('User name').fill('demo');
	await page.getByLabel('Password').fill(password);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.locator('#conn[data-state="up"]').waitFor();
	for (const id of ['kitchen', 'hall', 'garage']) {
		await page.locator(`article.ctl[data-ctl="${id}"][data-status="online"]`).waitFor();
		const temp = ctl(id).locator('.sensor[data-sensor="temp"] [data-field="value"]');
		await page.waitForFunction((e) => /^-?[0-9.]+$/.test(e.textContent.trim()), await temp.elementHandle());
	}
	assert.equal(await page.locator('section.home[data-home="demo"] [data-field="home-status"]').textContent(), 'online');
	// Controls from info.actions: a select for on|off|toggle, a text input with a pattern otherwise.
	assert.equal(await ctl('kitchen').getByLabel('state').evaluate((e) => e.tagName), 'SELECT');
	assert.equal(await ctl('kitchen').getByLabel('seconds').getAttribute('pattern'), '[1-9]|1[0-9]|20');
	await shot('02-signed-in');
});

// Sensor history. The demo's controllers have run for seconds only, so the test writes a day of
// a controller's past readings first: retained state messages with past ts, published with the
// home server's own broker account exactly as frMhs publishes a sensor change (docs/topics.md).
// frAroundWeb records them like any change; the chart must then show each of them, and after
// them the live readings of the real controller.
// Waits until a history figure shows range (loaded, not loading).
async function figIs(fig, range) {
	await page.waitForFunction(([f, r]) => f.dataset.range === r && !('loading' in f.dataset) && f.dataset.count !== undefined,
		[await fig.elementHandle(), range]);
}

const PAST = Array.from({ length: 24 }, (_, i) => ({ ts: Date.now() - (24 - i) * 50 * 60e3,
	value: Math.round((19 + 3 * Math.sin(i / 3.5)) * 100) / 100 }));

step('sensor history: a chart shows the values a controller produced over time, then live ones', async () => {
	const homePw = readFileSync(join(dir, 'broker/homes/demo/mqtt.pw'), 'utf8').trim();
	for (const p of PAST) {
		const r = spawnSync('mosquitto_pub', ['-p', String(brokerPort), '-u', 'home-demo', '-P', homePw, '-r', '-q', '1',
			'-t', 'fr/demo/ctl/kitchen/state/temp', '-m', JSON.stringify(p)], { encoding: 'utf8', timeout: 10_000 });
		assert.equal(r.status, 0, `mosquitto_pub: ${r.stderr}`);
	}
	const fig = ctl('kitchen').locator('figure.chart[data-sensor="temp"]');
	const day = fig.getByRole('button', { name: 'temp: last 24 h' });
	// Recorded within a second or so (one write per second): reload the 24 h range until every
	// past reading is in the chart's values table.
	const deadline = Date.now() + STEP;
	const have = () => fig.evaluate((f, ts) => ts.every((t) => f.querySelector(`tbody tr[data-ts="${t}"]`)), PAST.map((p) => p.ts));
	while (!(await have())) {
		assert.ok(Date.now() < deadline, 'the past readings never showed in the chart');
		await page.waitForTimeout(300);
		await day.click();
		await figIs(fig, '24h');
	}
	assert.equal(await fig.getAttribute('data-kind'), 'numeric');
	assert.equal(await fig.getAttribute('data-resolution'), 'raw');
	assert.equal(await fig.locator('.plot canvas').count() > 0, true, 'uPlot drew a canvas');
	for (const p of PAST) {
		const cells = await fig.locator(`tbody tr[data-ts="${p.ts}"] td`).allTextContents();
		assert.equal(cells[1], String(p.value), `the reading of ${new Date(p.ts).toISOString()}`);
	}
	// The text alternative says the same as the chart (also the canvas's label).
	const summary = await fig.locator('[data-field="summary"]').textContent();
	assert.match(summary, /^temp, last 24 h: \d+ readings, lowest [0-9.]+, highest [0-9.]+; latest /);
	assert.equal(await fig.locator('.plot').getAttribute('aria-label'), summary);

	// Live: the real controller's next readings are added as they come, the newest equal to the
	// sensor's value on the card.
	const before = Number(await fig.getAttribute('data-count'));
	await page.waitForFunction(([f, n]) => Number(f.dataset.count) > n, [await fig.elementHandle(), before]);
	await page.waitForFunction((f) => {
		const newest = f.querySelector('tbody tr td:nth-child(2)')?.textContent;
		const card = f.closest('article.ctl').querySelector('.sensor[data-sensor="temp"] [data-field="value"]').textContent;
		return newest !== undefined && Number(newest) === Number(card);
	}, await fig.elementHandle());
	const newestTs = Number(await fig.locator('tbody tr').first().getAttribute('data-ts'));
	assert.ok(newestTs > PAST[PAST.length - 1].ts, 'the newest point is a live one');

	// The range selector works from the keyboard: focus, Enter and Space.
	const week = fig.getByRole('button', { name: 'temp: last 7 d' });
	await week.focus();
	await page.keyboard.press('Enter');
	await figIs(fig, '7d');
	assert.equal(await week.getAttribute('aria-pressed'), 'true');
	assert.equal(await day.getAttribute('aria-pressed'), 'false');
	await page.keyboard.press('Tab');
	await page.keyboard.press('Space');
	// A year is more than the raw points' 7 days: averages of stored 5-minute buckets.
	await figIs(fig, '1y');
	assert.match(await fig.getAttribute('data-resolution'), /^[0-9]+$/);
	assert.equal(Number(await fig.getAttribute('data-resolution')) % 300000, 0);
	assert.deepEqual(await fig.locator('thead th').allTextContents(), ['From', 'Mean', 'Min', 'Max']);
	assert.match(await fig.locator('[data-field="summary"]').textContent(), /averages of/);
	await day.click();
	await figIs(fig, '24h');
	assert.equal(await fig.getAttribute('data-resolution'), 'raw');

	// A string sensor (the lamp: on/off) shows a timeline of its values instead.
	const lamp = ctl('kitchen').locator('figure.chart[data-sensor="lamp"]');
	await page.waitForFunction((f) => f.dataset.kind === 'text' && f.querySelector('.timeline li'), await lamp.elementHandle());
	const cardLamp = await ctl('kitchen').locator('.sensor[data-sensor="lamp"] [data-field="value"]').textContent();
	assert.equal(await lamp.locator('.timeline li .tl-value').first().textContent(), cardLamp);
	assert.deepEqual(cspViolations, [], 'no Content Security Policy violation');

	// The whole card, without the sticky header over it: a viewport tall enough for it.
	const vp = page.viewportSize();
	await page.setViewportSize({ width: vp.width, height: 1600 });
	await page.evaluate(() => window.scrollTo(0, 0));
	await ctl('kitchen').screenshot({ path: join(ART, '07-history-chart.png') });
	await page.setViewportSize(vp);
	if (process.env.FR_README_SCREENSHOT === '1')
		copyFileSync(join(ART, '07-history-chart.png'), join(ROOT, 'docs/screenshot-history.png'));
});

// A mosquitto_sub on topic as the demo user (who may read its home), MQTT 5 so that properties
// show, printing each message as `MSG <format>`: `subscribed` once the subscription stands,
// `first` the first message parse() reads and accept() takes, neither throwing (it stops then,
// unless keep), `taken` every one taken so far, `stop()`.
function watchTopic(topic, format, parse, accept, keep = false) {
	const sub = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-V', '5', '-d', '-p', String(brokerPort), '-u', 'demo', '-I', 'demo:', '-P', password,
		'-t', topic, '-W', '90', '-F', `MSG ${format}`], { stdio: ['ignore', 'pipe', 'pipe'] });
	let out = '';
	sub.stdout.on('data', (d) => { out += d; });
	const subscribed = new Promise((res, rej) => {
		sub.stdout.on('data', () => { if (/SUBACK/.test(out)) res(); });
		sub.once('exit', () => rej(new Error(`mosquitto_sub ended: ${out}`)));
	});
	const taken = [];
	let read = 0; // complete lines of out looked at
	const first = new Promise((res, rej) => {
		const check = () => {
			const lines = out.split('\n').slice(0, -1);
			for (; read < lines.length; read++) {
				if (!lines[read].startsWith('MSG ')) continue;
				let m;
				try {
					m = parse(lines[read].slice(4));
					if (!accept(m)) continue;
				} catch { continue; } // not what is awaited (e.g. not JSON)
				taken.push(m);
				res(m);
				if (!keep) sub.kill();
			}
		};
		sub.stdout.on('data', check);
		sub.once('exit', () => { check(); rej(new Error(`${topic}: the awaited message never came:\n${out}`)); });
	});
	first.catch(() => {}); // awaited by the caller; a step that failed before must not crash the run
	return { subscribed, first, taken, stop: () => sub.kill() };
}

// Watches requests on the broker: `request` is the first one accept() takes (by default the first
// one at all) as published: its MQTT 5 response topic, correlation data and document.
function watchCommand(topic, accept = () => true, keep = false) {
	const w = watchTopic(topic, '%R|%D|%p', (line) => {
		const [rt, cd, ...body] = line.split('|');
		return { rt, cd, req: JSON.parse(body.join('|')) };
	}, accept, keep);
	return { subscribed: w.subscribed, request: w.first, taken: w.taken, stop: w.stop };
}

// docs/topics.md, "The request profile of fr's own clients": what the page and the relay both
// send, whoever sends it (sent between t0 and t1, waiting `wait` seconds for the result).
function assertProfile({ rt, cd, req }, wait, t0, t1) {
	assert.match(req.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
	assert.match(rt, /^fr\/demo\/reply\/demo\/[A-Za-z0-9_-]+$/);
	assert.equal(req.reply_to, rt);
	assert.equal(cd, req.id);
	assert.equal(req.progress, true);
	const margin = Math.max(wait - 2, wait / 2);
	assert.ok(req.deadline >= t0 / 1000 + margin - 1 && req.deadline <= t1 / 1000 + margin + 1,
		`deadline ${req.deadline} for a wait of ${wait} s sent between ${t0 / 1000} and ${t1 / 1000}`);
}

let pageRequest;
step('an action runs with progress and its real result', async () => {
	const form = ctl('kitchen').locator('form[data-action="lamp"]');
	const watch = watchCommand('fr/demo/ctl/kitchen/cmd');
	await watch.subscribed;
	await form.getByLabel('state').selectOption('on');
	const t0 = Date.now();
	await form.getByRole('button', { name: 'Run lamp' }).click();
	await form.locator('[data-field="result"][data-status="ok"]').waitFor();
	// The request: the profile's (a UUID id, the user's reply tree, the id as correlation data,
	// a deadline from the page's wait: the action's timeout + 20 s).
	const sent = await watch.request;
	pageRequest = { ...sent, wait: Number(await form.getAttribute('data-timeout')) + 20, t0, t1: Date.now() };
	assertProfile(sent, pageRequest.wait, pageRequest.t0, pageRequest.t1);
	assert.match(sent.rt, /^fr\/demo\/reply\/demo\/[0-9a-f]{8}$/);
	assert.deepEqual(sent.req.args, { state: 'on' });
	assert.equal(sent.req.action, 'lamp');
	assert.equal(await form.locator('[data-field="progress"]').textContent(), 'sent → accepted → started → result (ok)');
	const res = await form.locator('[data-field="result"]').innerText();
	assert.match(res, /exit code\s+0/);
	assert.match(res, /duration\s+\d+ ms/);
	assert.match(res, /\bon\b/);
	// The lamp sensor follows the action (polled by the controller every second).
	await page.waitForFunction(() => document.querySelector('article.ctl[data-ctl="kitchen"] .sensor[data-sensor="lamp"] [data-field="value"]')?.textContent === 'on');
	await shot('03-action-result');
	if (process.env.FR_README_SCREENSHOT === '1') {
		await page.evaluate(() => window.scrollTo(0, 0));
		await page.screenshot({ path: join(ART, 'readme.png') });
		copyFileSync(join(ART, 'readme.png'), join(ROOT, 'docs/screenshot.png'));
	}
});

// One command path (docs/topics.md): PHP's request goes bridge-php -> shim -> frAroundWeb's relay
// -> broker, the page's straight to the broker, and both are the same request document apart
// from the ids, the reply topic's client level and the time it was sent.
step('a request from PHP is the page\'s request document, ids apart', async () => {
	assert.ok(pageRequest, 'the page\'s request step did not run');
	const watch = watchCommand('fr/demo/ctl/kitchen/cmd');
	await watch.subscribed;
	const code = `require getenv('FR_ROOT') . '/bridge-php/tests/bootstrap.php';
$c = new Fr\\Bridge\\Client('tcp://127.0.0.1:' . getenv('FR_SHIM_PORT'), getenv('FR_TOKEN'), 10.0);
echo $c->request('demo', 'kitchen', 'lamp', ['state' => 'on'], null, null, (float) getenv('FR_WAIT'))->status;`;
	const t0 = Date.now();
	const php = spawnSync('php', ['-r', code], { encoding: 'utf8', timeout: 90_000, env: { ...process.env,
		FR_ROOT: ROOT, FR_SHIM_PORT: String(shimPort), FR_TOKEN: password, FR_WAIT: String(pageRequest.wait) } });
	assert.equal(php.status, 0, `php: ${php.stdout}${php.stderr}`);
	assert.equal(php.stdout, 'ok');
	const sent = await watch.request;
	assertProfile(sent, pageRequest.wait, t0, Date.now());
	assert.match(sent.rt, /^fr\/demo\/reply\/demo\/web-[A-Za-z0-9_-]+$/);
	const same = ({ rt, req }) => ({ ...req, id: '<id>', deadline: '<sent + wait - 2>',
		reply_to: req.reply_to.replace(/[^/]+$/, '<client>'), rt: rt.replace(/[^/]+$/, '<client>') });
	assert.deepEqual(Object.keys(sent.req), Object.keys(pageRequest.req));
	assert.deepEqual(same(sent), same(pageRequest));
});

step('a killed controller goes offline with its reason and comes back', async () => {
	const pid = pids().get('hall');
	assert.ok(pid, 'hall pid');
	process.kill(pid, 'SIGKILL');
	await page.locator('article.ctl[data-ctl="hall"][data-status="offline"]').waitFor();
	await page.waitForFunction(() => document.querySelector('article.ctl[data-ctl="hall"] [data-field="reason"]')?.textContent.length > 0);
	const reason = await ctl('hall').locator('[data-field="reason"]').textContent();
	assert.match(reason, /missed|lost/);
	await shot('04-controller-offline');
	demoRestart('hall');
	await page.locator('article.ctl[data-ctl="hall"][data-status="online"]').waitFor();
	assert.equal(await ctl('hall').locator('[data-field="reason"]').textContent(), '');
});

// docs/topics.md, fr/<home>/heartbeat: frMhs frozen (SIGSTOP: its connection stays open, no will
// is sent, as when the broker node holding it dies) still reads online on the broker; the page
// marks the home stale with the reason after 3 missed beats, and online at the next beat.
step('a home whose heartbeats stop is shown stale with the reason, and online again', async () => {
	const pid = pids().get('frMhs');
	assert.ok(pid, 'frMhs pid');
	const home = page.locator('section.home[data-home="demo"]');
	// The page has heard a beat (before one, a home has no liveness to lose).
	await page.locator('section.home[data-home="demo"][data-status="online"][data-heartbeat="2"]').waitFor();
	process.kill(pid, 'SIGSTOP');
	try {
		await page.locator('section.home[data-home="demo"][data-status="stale"]').waitFor();
		assert.equal(await home.locator('[data-field="home-status"]').textContent(), 'stale');
		const reason = await home.locator('[data-field="home-reason"]').textContent();
		const m = /^no heartbeat for (\d+) s$/.exec(reason);
		assert.ok(m, `stale reason: ${reason}`);
		assert.ok(Number(m[1]) >= 6, `stale before 3 beats of 2 s were missed: ${reason}`);
		await shot('04b-home-stale');
	} finally {
		process.kill(pid, 'SIGCONT');
	}
	await page.locator('section.home[data-home="demo"][data-status="online"]').waitFor();
	assert.equal(await home.locator('[data-field="home-reason"]').textContent(), '');
});

step('a broker restart takes the connection down and back up', async () => {
	await page.evaluate(() => {
		window.frConnStates = [];
		const c = document.getElementById('conn');
		new MutationObserver(() => window.frConnStates.push(c.dataset.state)).observe(c, { attributes: true });
	});
	demoRestart('mosquitto');
	await page.waitForFunction(() => window.frConnStates.includes('down'));
	await page.waitForFunction(() => window.frConnStates.includes('down')
		&& document.getElementById('conn').dataset.state === 'up');
	// Everything works again over the new connection.
	await page.locator('article.ctl[data-ctl="garage"][data-status="online"]').waitFor();
	const form = ctl('garage').locator('form[data-action="lamp"]');
	await form.getByLabel('state').selectOption('off');
	await form.getByRole('button', { name: 'Run lamp' }).click();
	await form.locator('[data-field="result"][data-status="ok"]').waitFor();
	await shot('05-after-broker-restart');
});

// The first payload on topic that ok() takes: `seen`; `subscribed` once the subscription stands.
function waitMessage(topic, ok) {
	const w = watchTopic(topic, '%p', (p) => p, ok);
	return { subscribed: w.subscribed, seen: w.first };
}

// Publishes as the home server (its own broker account, as frMhs would) or as the demo user.
function publishAs(account, ...args) {
	const pw = account === 'demo' ? password : readFileSync(join(dir, 'broker/homes/demo/mqtt.pw'), 'utf8').trim();
	const r = spawnSync('mosquitto_pub', ['-V', '5', '-p', String(brokerPort), '-u', account, '-I', `${account}:`, '-P', pw, '-q', '1', ...args],
		{ encoding: 'utf8', timeout: 10_000 });
	assert.equal(r.status, 0, `mosquitto_pub ${args.join(' ')}: ${r.stderr}`);
}

// Issue 16 item 2, docs/topics.md fr/<home>/sync: the page that (re)connects learns the truth from
// the home's answer, not from the broker's retained messages. While the page is cut off from the
// broker (nginx, its only way there, stopped) a controller dies and another one's lamp is
// switched by a command, frMhs says so (retained), and those retained status, info and state are
// then deleted, as on a cluster node that never had them or a broker that lost them. Back on
// line, the page asks fr/demo/sync (seen on the broker, in the request profile of its MQTT
// version) and shows the controller offline with its reason and the lamp's new value: nothing
// else tells it.
let lastSyncId;
async function reconnectShowsTheTruth(version) {
	const home = page.locator('section.home[data-home="demo"]');
	await page.locator('#conn[data-state="up"]').waitFor();
	await page.locator('article.ctl[data-ctl="hall"][data-status="online"]').waitFor();
	process.kill(-pids().get('nginx'), 'SIGTERM');
	await page.locator('#conn:not([data-state="up"])').waitFor();

	const lampValue = ctl('kitchen').locator('.sensor[data-sensor="lamp"] [data-field="value"]');
	const lampWas = await lampValue.textContent();
	const lamp = lampWas === 'on' ? 'off' : 'on';
	const status = waitMessage('fr/demo/ctl/hall/status', (p) => p === 'offline');
	const info = waitMessage('fr/demo/ctl/hall/info', (p) => JSON.parse(p).online === false);
	const state = waitMessage('fr/demo/ctl/kitchen/state/lamp', (p) => JSON.parse(p).value === lamp);
	await Promise.all([status.subscribed, info.subscribed, state.subscribed]);
	process.kill(pids().get('hall'), 'SIGKILL');
	publishAs('demo', '-t', 'fr/demo/ctl/kitchen/cmd', '-m', JSON.stringify({ id: randomUUID(), action: 'lamp', args: { state: lamp } }));
	await Promise.all([status.seen, info.seen, state.seen]);
	const gone = ['fr/demo/ctl/hall/status', 'fr/demo/ctl/hall/info', 'fr/demo/ctl/kitchen/state/lamp'];
	for (const t of gone) publishAs('home-demo', '-r', '-n', '-t', t);
	// Nothing retained is left there: Mosquitto sends the retained messages of one SUBSCRIBE in
	// the order of its filters, so a marker retained on the last filter comes first.
	publishAs('home-demo', '-r', '-t', 'fr/demo/test/marker', '-m', 'marker');
	const first = spawnSync('mosquitto_sub', ['-p', String(brokerPort), '-u', 'demo', '-I', 'demo:', '-P', password,
		...[...gone, 'fr/demo/test/marker'].flatMap((t) => ['-t', t]), '-C', '1', '-W', '30', '-F', '%t'],
	{ encoding: 'utf8', timeout: 40_000 });
	publishAs('home-demo', '-r', '-n', '-t', 'fr/demo/test/marker');
	assert.equal(first.stdout.trim(), 'fr/demo/test/marker', `retained left: ${first.stdout}${first.stderr}`);

	const watch = watchCommand('fr/demo/sync', ({ req }) => /^fr\/demo\/reply\/demo\/[0-9a-f]{8}$/.test(req?.reply_to ?? ''));
	try {
		await watch.subscribed;
		demoRestart('nginx');
		const { rt, cd, req } = await watch.request;
		assert.match(req.id, /^sync-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
		assert.notEqual(req.id, lastSyncId, 'a new id for each connection');
		lastSyncId = req.id;
		if (version === 5) {
			assert.equal(rt, req.reply_to, 'the reply topic as MQTT 5 response topic');
			assert.equal(cd, req.id, 'the id as correlation data');
		} else {
			assert.equal(rt, '', 'no response topic on 3.1.1');
			assert.equal(cd, '', 'no correlation data on 3.1.1');
		}
	} finally {
		watch.stop();
	}
	await page.locator(`#conn[data-state="up"][data-mqtt="${version === 5 ? '5' : '3.1.1'}"]`).waitFor();
	await page.locator('article.ctl[data-ctl="hall"][data-status="offline"]').waitFor();
	assert.match(await ctl('hall').locator('[data-field="reason"]').textContent(), /missed|lost/);
	await page.waitForFunction(([e, v]) => e.textContent === v, [await lampValue.elementHandle(), lamp]);
	await page.locator('section.home[data-home="demo"][data-sync="ok"]').waitFor();
	assert.equal(await home.locator('[data-field="home-status"]').textContent(), 'online');
	await shot(`05c-sync-after-reconnect-mqtt${version === 5 ? '5' : '311'}`);

	demoRestart('hall');
	await page.locator('article.ctl[data-ctl="hall"][data-status="online"]').waitFor();
}

step('after a reconnect the page asks fr/<home>/sync and shows what no retained message says', async () => {
	await reconnectShowsTheTruth(5);
});

// Bounded: a home that does not answer (frMhs frozen: connected to the broker, silent) is asked
// once on the new connection, marked "no answer" after the page's 10 s, and not asked again
// until the next connect.
step('a home that does not answer its sync is asked once per connect, not again', async () => {
	await page.locator('#conn[data-state="up"]').waitFor();
	const pid = pids().get('frMhs');
	assert.ok(pid, 'frMhs pid');
	const watch = watchCommand('fr/demo/sync', ({ req }) => /^fr\/demo\/reply\/demo\/[0-9a-f]{8}$/.test(req?.reply_to ?? ''), true);
	try {
		await watch.subscribed;
		process.kill(-pids().get('nginx'), 'SIGTERM');
		await page.locator('#conn:not([data-state="up"])').waitFor();
		process.kill(pid, 'SIGSTOP');
		try {
			demoRestart('nginx');
			await watch.request;
			await page.locator('section.home[data-home="demo"][data-sync="no answer"]').waitFor();
			assert.equal(await page.locator('#conn').getAttribute('data-state'), 'up');
			assert.equal(watch.taken.length, 1, `one request on one connection: ${JSON.stringify(watch.taken)}`);
		} finally {
			process.kill(pid, 'SIGCONT');
		}
	} finally {
		watch.stop();
	}
	await page.locator('section.home[data-home="demo"][data-status="online"]').waitFor();
});

// Issue 16: the page speaks the MQTT version frAroundWeb speaks (index.php asks it). With
// frAroundWeb held to 3.1.1 (mqtt.version = 4; the demo's Mosquitto speaks both), a reloaded
// page connects with 3.1.1, shows the statuses and runs an action: its request carries no
// response topic and no correlation data, only reply_to, and the replies are matched by id.
step('on MQTT 3.1.1 the page shows statuses and an action\'s result (reply_to, matched by id)', async () => {
	assert.equal(await page.locator('#conn').getAttribute('data-mqtt'), '5');
	assert.equal(await page.locator('#app').getAttribute('data-mqtt-version'), '5');
	const conf = join(dir, 'frAroundWeb.conf');
	const orig = readFileSync(conf, 'utf8');
	assert.match(orig, /^mqtt = \{ /m);
	writeFileSync(conf, orig.replace(/^mqtt = \{ /m, 'mqtt = { version = 4; '));
	try {
		demoRestart('frAroundWeb');
		await page.reload();
		assert.equal(await page.locator('#app').getAttribute('data-mqtt-version'), '4');
		await page.locator('#conn[data-state="up"][data-mqtt="3.1.1"]').waitFor();
		for (const id of ['kitchen', 'hall', 'garage']) await page.locator(`article.ctl[data-ctl="${id}"][data-status="online"]`).waitFor();
		const form = ctl('hall').locator('form[data-action="lamp"]');
		const watch = watchCommand('fr/demo/ctl/hall/cmd');
		await watch.subscribed;
		await form.getByLabel('state').selectOption('on');
		await form.getByRole('button', { name: 'Run lamp' }).click();
		await form.locator('[data-field="result"][data-status="ok"]').waitFor();
		assert.equal(await form.locator('[data-field="progress"]').textContent(), 'sent → accepted → started → result (ok)');
		const { rt, cd, req } = await watch.request;
		assert.equal(rt, '', 'no response topic on 3.1.1');
		assert.equal(cd, '', 'no correlation data on 3.1.1');
		assert.match(req.reply_to, /^fr\/demo\/reply\/demo\/[0-9a-f]{8}$/);
		await shot('05b-mqtt311-action-result');
		// The sync after a reconnect, with reply_to only.
		await reconnectShowsTheTruth(4);
	} finally {
		writeFileSync(conf, orig);
		demoRestart('frAroundWeb');
	}
});

// A RabbitMQ 3.10 node of the test's own (MQTT 3.1.1 only; it closes an MQTT 5 connection
// before any CONNACK) with its WebSocket listener at /mqtt and the demo user as its user, as
// tests/integration/lib.sh's fr_rabbit starts one. Returns stop().
async function startRabbit() {
	const base = join(dir, 'rmq');
	mkdirSync(join(base, 'home'), { recursive: true });
	writeFileSync(join(base, 'home/.erlang.cookie'), randomBytes(16).toString('hex'), { mode: 0o600 });
	const [amqp, mqttPort, ws, epmdPort, dist] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()];
	writeFileSync(join(base, 'rabbit.conf'), [`listeners.tcp.1 = 127.0.0.1:${amqp}`,
		`mqtt.listeners.tcp.1 = 127.0.0.1:${mqttPort}`, 'web_mqtt.tcp.ip = 127.0.0.1',
		`web_mqtt.tcp.port = ${ws}`, 'web_mqtt.ws_path = /mqtt', 'loopback_users = none', ''].join('\n'));
	writeFileSync(join(base, 'plugins'), '[rabbitmq_mqtt,rabbitmq_web_mqtt].\n');
	const node = `fr-browser-${process.pid}@localhost`;
	const renv = { ...process.env, HOME: join(base, 'home'), RABBITMQ_NODENAME: node,
		RABBITMQ_CONFIG_FILE: join(base, 'rabbit'), RABBITMQ_ENABLED_PLUGINS_FILE: join(base, 'plugins'),
		RABBITMQ_MNESIA_BASE: join(base, 'mnesia'), RABBITMQ_LOG_BASE: join(base, 'log'), RABBITMQ_LOGS: '-',
		RABBITMQ_PID_FILE: join(base, 'pid'), RABBITMQ_DIST_PORT: String(dist),
		ERL_EPMD_PORT: String(epmdPort), ERL_EPMD_ADDRESS: '127.0.0.1' };
	const log = openSync(join(dir, 'logs', 'rabbitmq.log'), 'a');
	const epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], { stdio: ['ignore', log, log] });
	const rabbit = spawn('/usr/lib/rabbitmq/bin/rabbitmq-server', [], { env: renv, stdio: ['ignore', log, log] });
	const stop = () => {
		try { process.kill(Number(readFileSync(join(base, 'pid'), 'utf8')), 'SIGKILL'); } catch { /* not started or gone */ }
		for (const p of [rabbit, epmd]) if (p.exitCode === null) p.kill('SIGKILL');
	};
	try {
		const until = Date.now() + 120_000;
		while (!(await new Promise((res) => {
			const c = createConnection(ws, '127.0.0.1');
			c.once('connect', () => { c.destroy(); res(true); });
			c.once('error', () => res(false));
		}))) {
			assert.ok(Date.now() < until && rabbit.exitCode === null, 'RabbitMQ\'s WebSocket listener never came up');
			await new Promise((res) => setTimeout(res, 200));
		}
		for (const args of [['add_user', 'demo', password], ['set_permissions', '-p', '/', 'demo', '.*', '.*', '.*']]) {
			const r = spawnSync('/usr/lib/rabbitmq/bin/rabbitmqctl', ['-n', node, ...args], { env: renv, encoding: 'utf8', timeout: 60_000 });
			assert.equal(r.status, 0, `rabbitmqctl ${args[0]}: ${r.stdout}${r.stderr}`);
		}
	} catch (e) {
		stop();
		throw e;
	}
	return { ws, stop };
}

// The page's own fall back: when the server cannot say which version (frAroundWeb stopped, so
// index.php has none), the page tries MQTT 5 and speaks 3.1.1 once the broker closes that
// connection unanswered -- a real broker without MQTT 5 behind the site's /mqtt.
step('with the version unknown the page falls back to 3.1.1 on a broker without MQTT 5', async () => {
	const site = join(dir, 'nginx/fr-site.conf');
	const orig = readFileSync(site, 'utf8');
	const to = `proxy_pass http://127.0.0.1:${wsPort};`;
	assert.ok(orig.includes(to), 'the demo site proxies /mqtt to its broker');
	const rmq = await startRabbit();
	try {
		process.kill(pids().get('frAroundWeb'), 'SIGTERM');
		writeFileSync(site, orig.replace(to, `proxy_pass http://127.0.0.1:${rmq.ws};`));
		demoRestart('nginx');
		await page.reload();
		assert.equal(await page.locator('#app').getAttribute('data-mqtt-version'), '');
		await page.locator('#conn[data-state="up"][data-mqtt="3.1.1"]').waitFor();
	} finally {
		rmq.stop();
		writeFileSync(site, orig);
		demoRestart('nginx');
		demoRestart('frAroundWeb');
	}
	await page.reload();
	await page.locator('#conn[data-state="up"][data-mqtt="5"]').waitFor();
});

step('usable on a phone-sized screen', async () => {
	await page.setViewportSize({ width: 390, height: 844 });
	const w = await page.evaluate(() => document.documentElement.scrollWidth);
	assert.ok(w <= 390, `no horizontal scrolling (page is ${w}px wide)`);
	await shot('06-phone');
});

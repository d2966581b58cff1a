// The real web page (web/public, served by nginx + php-fpm) in Debian's headless Chromium
// (playwright-core from tests/browser/node_modules), watched for the cluster stage
// (tests/cluster/04-page.sh).
//   node pagewatch.cjs URL USER PASSWORD_FILE HOME
// Signs in at URL as USER (https, self-signed certificate) in one browser context, the page
// "stay", and once the file $LATE exists signs in again in a second context, the page "late"
// (a user who opens the page then). Every 100 ms it reads what each page shows and prints a line
// when that changed:
//   <page> <ms> {"conn": #conn data-state, "mqtt": #conn data-mqtt, "home": section.home's
//               data-status, "sync": its data-sync, "reason": its reason text,
//               "ctl": {<id>: article.ctl's data-status, ...}}
// and, from the page's own WebSocket, "<page> <ms> BEAT" for every frame that carries the home's
// heartbeat (a PUBLISH on fr/<home>/heartbeat) and "<page> <ms> WS open|close". ms: Date.now().
// Ends when the file $END exists (exit 0) or after $BOUND s (exit 3); exit 2 with "ERROR <text>"
// on any failure.
'use strict';
const fs = require('fs');
const { chromium } = require(process.env.FR_SRC + '/tests/browser/node_modules/playwright-core');

const [url, user, pwFile, home] = process.argv.slice(2);
const pw = fs.readFileSync(pwFile, 'utf8').trim();
const BOUND = Number(process.env.BOUND || 150) * 1000;
const STEP = 60000;
const say = (line) => process.stdout.write(line + '\n');
const fail = (e) => { say(`ERROR ${String(e).split('\n')[0]}`); process.exit(2); };
const beatTopic = Buffer.from(`fr/${home}/heartbeat`);
let browser;

// What the page shows of the home, its controllers and the live connection.
function shown(home) {
	const conn = document.getElementById('conn');
	const h = document.querySelector(`section.home[data-home="${CSS.escape(home)}"]`);
	const ctl = {};
	if (h) for (const c of h.querySelectorAll('article.ctl[data-ctl]')) ctl[c.dataset.ctl] = c.dataset.status;
	return {
		conn: conn?.dataset.state ?? null,
		mqtt: conn?.dataset.mqtt ?? null,
		home: h?.dataset.status ?? null,
		sync: h?.dataset.sync ?? null,
		reason: h?.querySelector('[data-field="home-reason"]')?.textContent ?? '',
		ctl,
	};
}

async function open(name) {
	const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
	const page = await ctx.newPage();
	page.setDefaultTimeout(STEP);
	page.on('websocket', (ws) => {
		say(`${name} ${Date.now()} WS open`);
		ws.on('framereceived', (f) => {
			if (Buffer.isBuffer(f.payload) && f.payload.includes(beatTopic)) say(`${name} ${Date.now()} BEAT`);
		});
		ws.on('close', () => say(`${name} ${Date.now()} WS close`));
	});
	await page.goto(url);
	await page.getByLabel('User name').fill(user);
	await page.getByLabel('Password').fill(pw);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.locator('#app').waitFor();
	say(`${name} ${Date.now()} SIGNED_IN`);
	let last = '';
	return async () => {
		const s = JSON.stringify(await page.evaluate(shown, home));
		if (s !== last) say(`${name} ${Date.now()} ${(last = s)}`);
	};
}

(async () => {
	const t0 = Date.now();
	browser = await chromium.launch({
		executablePath: process.env.FR_CHROMIUM || '/usr/bin/chromium',
		args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync',
			// A page in the background must keep its timers (the stale check runs every 1 s).
			'--disable-background-timer-throttling', '--disable-renderer-backgrounding'],
		timeout: STEP,
	});
	const watchers = [await open('stay')];
	let late = !process.env.LATE;
	for (;;) {
		if (Date.now() - t0 > BOUND) { say('BOUND reached'); process.exit(3); }
		if (process.env.END && fs.existsSync(process.env.END)) break;
		if (!late && fs.existsSync(process.env.LATE)) {
			late = true;
			say(`late ${Date.now()} OPEN`);
			// Signed in beside the polling of "stay", which goes on meanwhile.
			open('late').then((w) => watchers.push(w), fail);
		}
		for (const w of watchers) await w();
		await new Promise((r) => setTimeout(r, 100));
	}
	await browser.close();
	process.exit(0);
})().catch(fail);

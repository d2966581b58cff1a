// The web page in Debian's Chromium (playwright-core from tests/browser/node_modules), for the
// conformance suite.
//   node page.cjs URL USER PASSWORD CTL ACTION ARGS_JSON
// Signs in at URL (https, the demo's self-signed certificate), waits until the live part is
// connected (#conn data-state="up"), runs ACTION of controller CTL from its form with ARGS_JSON
// ({"arg": "value"}) and prints one JSON line: the MQTT version the server handed the page
// (#app data-mqtt-version), the one the page says it speaks (#conn data-mqtt), the form's result
// status and progress text. Exit 0 when that line is printed, 2 on any failure (the line then has
// "error"); bounded at 60 s as a whole.
'use strict';
const { chromium } = require(process.env.FR_SRC + '/tests/browser/node_modules/playwright-core');

const [url, user, pw, ctl, action, argsJson] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const STEP = 30000;
let browser;
const timer = setTimeout(() => { out({ error: 'not done within 60 s' }); process.exit(2); }, 60000);

(async () => {
	const r = {};
	try {
		browser = await chromium.launch({
			executablePath: process.env.FR_CHROMIUM || '/usr/bin/chromium',
			args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
				'--disable-background-networking', '--disable-component-update', '--disable-sync'],
			timeout: STEP,
		});
		const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
		const page = await ctx.newPage();
		page.setDefaultTimeout(STEP);
		await page.goto(url);
		await page.getByLabel('User name').fill(user);
		await page.getByLabel('Password').fill(pw);
		await page.getByRole('button', { name: 'Sign in' }).click();
		await page.locator('#conn[data-state="up"]').waitFor();
		r.mqttVersion = await page.locator('#app').getAttribute('data-mqtt-version');
		r.dataMqtt = await page.locator('#conn').getAttribute('data-mqtt');
		const form = page.locator(`article.ctl[data-ctl="${ctl}"][data-status="online"] form[data-action="${action}"]`);
		for (const [k, v] of Object.entries(JSON.parse(argsJson))) await form.getByLabel(k).fill(v);
		await form.getByRole('button', { name: `Run ${action}` }).click();
		await form.locator('[data-field="result"][data-status]').waitFor();
		r.status = await form.locator('[data-field="result"]').getAttribute('data-status');
		r.progress = await form.locator('[data-field="progress"]').textContent();
		out(r);
		clearTimeout(timer);
		await browser.close();
		process.exit(0);
	} catch (e) {
		out(Object.assign(r, { error: String(e).split('\n')[0] }));
		process.exit(2);
	}
})();

// The deployment test's browser step (tests/integration/45-deploy.sh): Debian's chromium signs in
// on the deployed page, waits for the live connection and a controller online, and optionally
// runs an action to its result.
//   node deploy-signin.mjs URL USER PASSWORD HOME CTL [ACTION STATE] [SCREENSHOT.png]
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, user, password, home, ctlId, action, state, shot] = process.argv.slice(2);
const profile = mkdtempSync(join(tmpdir(), 'fr-deploy-chromium.'));
const ctx = await chromium.launchPersistentContext(profile, {
	executablePath: '/usr/bin/chromium',
	headless: true,
	// The certificate is from the test's own ACME server (pebble), not a public CA.
	ignoreHTTPSErrors: true,
	args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
		'--disable-background-networking', '--disable-component-update', '--disable-sync'],
	timeout: 60_000,
});
let rc = 1;
try {
	const page = ctx.pages()[0] || await ctx.newPage();
	page.setDefaultTimeout(60_000);
	page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
	await page.goto(url);
	await page.getByLabel('User name').fill(user);
	await page.getByLabel('Password').fill(password);
	await page.getByRole('button', { name: 'Sign in' }).click();
	await page.locator('#conn[data-state="up"]').waitFor();
	const card = page.locator(`section.home[data-home="${home}"] article.ctl[data-ctl="${ctlId}"]`);
	await card.and(page.locator('[data-status="online"]')).waitFor();
	console.log(`signed in as ${user}: live connection up, ${home}/${ctlId} online`);
	if (action) {
		const form = card.locator(`form[data-action="${action}"]`);
		await form.getByLabel('state').selectOption(state);
		await form.getByRole('button', { name: `Run ${action}` }).click();
		await form.locator('[data-field="result"][data-status="ok"]').waitFor();
		console.log(`${action} state=${state}: ${(await form.locator('[data-field="progress"]').textContent())}`);
	}
	if (shot) await page.screenshot({ path: shot, fullPage: true });
	rc = 0;
} catch (e) {
	console.error(`browser: ${e.message}`);
} finally {
	await ctx.close().catch(() => {});
	rmSync(profile, { recursive: true, force: true });
}
process.exit(rc);

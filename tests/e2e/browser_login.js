// Real browser walk through portier's pages (headless Debian Chromium driven by playwright-core):
// open the setup link, choose a password, land on the backend, sign out through the confirmation form, sign in
// again through /login (with a return_to), and check that a wrong password shows the generic error.
// Usage: node browser_login.js SETUP_URL BASE_URL USERNAME PASSWORD OUT_DIR
'use strict';
const path = require('path');
const fs = require('fs');
const { launch } = require('../browser/lib.js');

const [setupUrl, base, username, password, outDir] = process.argv.slice(2);

function check(cond, msg) {
    if (!cond)
        throw new Error('check failed: ' + msg);
}

(async () => {
    const profile = fs.mkdtempSync(path.join(outDir, 'profile-'));
    const context = await launch(profile);
    const violations = [];
    const page = await context.newPage();
    // CSP violations are console errors; HTTP error statuses (the 401 of a failed sign-in, favicon) are not counted
    page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) violations.push(m.text()); });
    try {
        await page.goto(setupUrl);
        check((await page.textContent('h1')).includes('Set your password'), 'setup page title');
        await page.screenshot({ path: path.join(outDir, '1-setup.png'), fullPage: true });
        await page.fill('#password', password);
        await page.fill('#password_confirm', password);
        await Promise.all([page.waitForNavigation(), page.click('#submit')]);
        check(page.url() === base + '/', 'landed on the backend: ' + page.url());
        const body = await page.textContent('body');
        check(body.includes(username), 'backend page names the user');
        check(body.toLowerCase().includes('x-portier-jwt-assertion'), 'backend received the JWT header');
        await page.screenshot({ path: path.join(outDir, '2-backend.png'), fullPage: true });

        const cookies = await context.cookies(base);
        const session = cookies.find((c) => c.name === '__Host-portier');
        check(session && session.secure && session.httpOnly && session.sameSite === 'Lax', 'cookie attributes');

        await page.goto(base + '/logout');
        await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
        check(page.url().startsWith(base + '/login'), 'after logout on the login page: ' + page.url());
        check((await page.textContent('body')).includes('signed out'), 'signed-out notice');

        await page.goto(base + '/app/deep?x=1');
        check(page.url().startsWith(base + '/login?return_to='), 'protected page sends to login');
        await page.fill('#username', username);
        await page.fill('#password', 'definitely not the password');
        await Promise.all([page.waitForNavigation(), page.click('#submit')]);
        check((await page.textContent('#error')).includes('Sign-in failed'), 'generic error shown');
        await page.screenshot({ path: path.join(outDir, '3-login-error.png'), fullPage: true });
        await page.fill('#username', username);
        await page.fill('#password', password);
        await Promise.all([page.waitForNavigation(), page.click('#submit')]);
        check(page.url() === base + '/app/deep?x=1', 'returned to the original page: ' + page.url());
        check(violations.length === 0, 'no console errors / CSP violations: ' + violations.join('; '));
        console.log('browser flow ok');
    } finally {
        await context.close();
    }
})().catch((e) => {
    console.error(e.stack || String(e));
    process.exit(1);
});

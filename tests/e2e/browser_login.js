// Real-browser walk through portier's pages (headless Debian Chromium via playwright-core, ../browser/lib.js):
// open the setup link, choose a password, land on the backend and check that it names the user, sign out through
// the confirmation form, then sign in again through /login (after a wrong password, which must show the generic
// error) and come back to the page first asked for. Screenshots go to OUT_DIR; the session cookie values the
// browser received are written to SECRETS_FILE (one a line) so that the Python side can check that no log
// contains them.
// Usage: node browser_login.js SETUP_URL BASE_URL USERNAME PASSWORD OUT_DIR SECRETS_FILE
// Prints "browser flow ok" and exits 0 on success; exits 1 with the reason otherwise.
'use strict';
const path = require('path');
const fs = require('fs');
const { launch } = require('../browser/lib.js');

const [setupUrl, base, username, password, outDir, secretsFile] = process.argv.slice(2);
const SESSION_COOKIE = '__Host-portier';

function check(cond, msg) {
    if (!cond)
        throw new Error('check failed: ' + msg);
}

async function noteSessionCookie(context) {
    const c = (await context.cookies(base)).find((x) => x.name === SESSION_COOKIE);
    if (c && c.value)
        fs.appendFileSync(secretsFile, c.value + '\n', { mode: 0o600 });
    return c;
}

async function shot(page, name) {
    await page.screenshot({ path: path.join(outDir, name), fullPage: true });
}

async function submit(page) {
    await Promise.all([page.waitForNavigation(), page.click('#submit')]);
}

(async () => {
    if (!setupUrl || !base || !username || !password || !outDir || !secretsFile) {
        console.error('usage: node browser_login.js SETUP_URL BASE_URL USERNAME PASSWORD OUT_DIR SECRETS_FILE');
        process.exit(2);
    }
    const profile = fs.mkdtempSync(path.join(outDir, 'profile-'));
    const context = await launch(profile);
    const problems = [];
    const page = context.pages()[0] || (await context.newPage());
    // CSP violations and script errors are console errors; failed loads (the 401 of a failed sign-in) are not.
    page.on('console', (m) => {
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
            problems.push(m.text());
    });
    try {
        // 1. The setup link: choose a password.
        await page.goto(setupUrl);
        check((await page.textContent('h1')).includes('Set your password'), 'setup page title');
        await shot(page, '1-setup.png');
        await page.fill('#password', password);
        await page.fill('#password_confirm', password);
        await submit(page);

        // 2. Signed in, on the backend (the e2e echo backend shows X-Portier-User in #user).
        check(page.url() === base + '/', 'landed on the backend: ' + page.url());
        const shown = (await page.textContent('#user')).trim();
        check(shown === username, 'backend page names the user (shows "' + shown + '")');
        check((await page.textContent('#headers')).includes('x-portier-jwt-assertion'), 'backend got the JWT');
        await shot(page, '2-backend.png');
        const session = await noteSessionCookie(context);
        check(session && session.secure && session.httpOnly && session.sameSite === 'Lax', 'cookie attributes');

        // 3. Sign out through the confirmation form.
        await page.goto(base + '/logout');
        await shot(page, '3-logout.png');
        await submit(page);
        check(page.url().startsWith(base + '/login'), 'after sign-out on the login page: ' + page.url());
        check(!(await context.cookies(base)).some((c) => c.name === SESSION_COOKIE), 'session cookie removed');

        // 4. A protected page sends the browser to /login; a wrong password shows the generic error.
        await page.goto(base + '/app/deep?x=1');
        check(page.url().startsWith(base + '/login?return_to='), 'protected page sends to login: ' + page.url());
        await page.fill('#username', username);
        await page.fill('#password', 'definitely not the password');
        await submit(page);
        check(await page.isVisible('#error'), 'an error is shown after a wrong password');
        await shot(page, '4-login-error.png');

        // 5. Sign in again and come back to the page first asked for.
        await page.fill('#username', username);
        await page.fill('#password', password);
        await submit(page);
        check(page.url() === base + '/app/deep?x=1', 'returned to the original page: ' + page.url());
        check((await page.textContent('#user')).trim() === username, 'backend names the user again');
        await noteSessionCookie(context);
        await shot(page, '5-signed-in-again.png');

        check(problems.length === 0, 'no console errors / CSP violations: ' + problems.join('; '));
        console.log('browser flow ok');
    } finally {
        await context.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
})().catch((e) => {
    console.error(e.stack || String(e));
    process.exit(1);
});

// SAML single sign-on in a real browser (headless Debian Chromium via playwright-core, ../browser/lib.js): open a
// page protected by mod_auth_mellon, get sent to portier (signed AuthnRequest), sign in on portier's login page,
// come back through the auto-submitting SAML form (its script is served by portier under its CSP) to the SP,
// which shows what it received. Screenshots go to OUT_DIR; the session cookie values the browser received are
// written to SECRETS_FILE (one a line) for the log check.
// Usage: node browser_saml.js SP_URL PORTIER_BASE USERNAME PASSWORD OUT_DIR SECRETS_FILE
// Prints the SP's page text after "saml flow ok " and exits 0 on success; exits 1 with the reason otherwise.
'use strict';
const path = require('path');
const fs = require('fs');
const { launch } = require('../browser/lib.js');

const [spUrl, base, username, password, outDir, secretsFile] = process.argv.slice(2);

function check(cond, msg) {
    if (!cond)
        throw new Error('check failed: ' + msg);
}

(async () => {
    const profile = fs.mkdtempSync(path.join(outDir, 'profile-'));
    const context = await launch(profile);
    const problems = [];
    const page = context.pages()[0] || (await context.newPage());
    page.on('console', (m) => {
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
            problems.push(m.text());
    });
    try {
        await page.goto(spUrl);
        check(page.url().startsWith(base + '/login?return_to=%2Fsaml%2Fsso%2Fresume'), 'sent to sign in: ' + page.url());
        await page.screenshot({ path: path.join(outDir, 'saml-1-login.png'), fullPage: true });
        await page.fill('#username', username);
        await page.fill('#password', password);
        await Promise.all([page.waitForURL((u) => u.toString().startsWith(spUrl), { timeout: 20000 }),
                           page.click('#submit')]);
        await page.waitForLoadState('load');
        const text = await page.textContent('body');
        await page.screenshot({ path: path.join(outDir, 'saml-2-sp.png'), fullPage: true });
        for (const c of await context.cookies(base))
            if (c.name === '__Host-portier')
                fs.appendFileSync(secretsFile, c.value + '\n', { mode: 0o600 });
        check(problems.length === 0, 'no console errors / CSP violations: ' + problems.join('; '));
        console.log('saml flow ok ' + text.trim());
    } finally {
        await context.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
})().catch((e) => {
    console.error(e.stack || String(e));
    process.exit(1);
});

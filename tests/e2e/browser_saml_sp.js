// Sign-in with a company account in a real browser (headless Debian Chromium via playwright-core,
// ../browser/lib.js): portier's login page -> the IdP's button -> the IdP (a pysaml2 IdP on loopback that answers
// at once) -> its auto-submitting cross-site POST to portier's ACS -> the protected page behind portier. Screenshots
// go to OUT_DIR; the session cookie values the browser received are written to SECRETS_FILE for the log check.
// Usage: node browser_saml_sp.js PORTIER_BASE BUTTON_ID|email:ADDRESS RETURN_PATH OUT_DIR SECRETS_FILE
// Prints the backend's page text after "saml sp flow ok " and exits 0 on success; exits 1 with the reason otherwise.
'use strict';
const path = require('path');
const fs = require('fs');
const { launch } = require('../browser/lib.js');

const [base, button, returnPath, outDir, secretsFile] = process.argv.slice(2);

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
        await page.goto(base + '/login?return_to=' + encodeURIComponent(returnPath));
        await page.screenshot({ path: path.join(outDir, 'saml-sp-1-login.png'), fullPage: true });
        const done = page.waitForURL((u) => u.toString() === base + returnPath, { timeout: 20000 });
        if (button.startsWith('email:')) { // home-realm discovery: the email form, then portier's continue page
            await page.fill('#sso-email', button.slice(6));
            await Promise.all([done, page.click('#sso-submit')]);
        } else {
            check(await page.isVisible('#' + button), 'the connection button is on the login page');
            await Promise.all([done, page.click('#' + button)]);
        }
        await page.waitForLoadState('load');
        const text = await page.textContent('body');
        await page.screenshot({ path: path.join(outDir, 'saml-sp-2-app.png'), fullPage: true });
        for (const c of await context.cookies(base))
            if (c.name.startsWith('__Host-portier'))
                fs.appendFileSync(secretsFile, c.value + '\n', { mode: 0o600 });
        check(problems.length === 0, 'no console errors / CSP violations: ' + problems.join('; '));
        console.log('saml sp flow ok ' + text.trim());
    } finally {
        await context.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
})().catch((e) => {
    console.error(e.stack || String(e));
    process.exit(1);
});

// Real-browser enrolment of a second factor (headless Debian Chromium via playwright-core, ../browser/lib.js):
// set a password through the setup link, open /account/mfa, check that the QR code image loaded (same-origin SVG
// under the strict CSP), take the screenshot the Python side decodes with zbarimg, confirm with a TOTP code
// computed here from the key shown on the page, see the recovery codes once, and continue to the backend.
// Usage: node browser_mfa.js SETUP_URL BASE_URL USERNAME PASSWORD OUT_DIR SECRETS_FILE
// Prints "mfa browser flow ok"; SECRETS_FILE receives the session cookies, the OTP key and the recovery codes.
'use strict';
const crypto = require('crypto');
const path = require('path');
const fs = require('fs');
const { launch } = require('../browser/lib.js');

const [setupUrl, base, username, password, outDir, secretsFile] = process.argv.slice(2);

function check(cond, msg) {
    if (!cond)
        throw new Error('check failed: ' + msg);
}

function note(value) {
    fs.appendFileSync(secretsFile, value + '\n', { mode: 0o600 });
}

function base32Decode(s) {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    let bits = 0, value = 0;
    const out = [];
    for (const ch of s.replace(/[\s=]/g, '')) {
        value = (value << 5) | alphabet.indexOf(ch);
        bits += 5;
        if (bits >= 8) {
            out.push((value >>> (bits - 8)) & 0xff);
            bits -= 8;
        }
    }
    return Buffer.from(out);
}

// RFC 6238 TOTP, SHA-1, 6 digits, 30 s (portier's defaults).
function totp(key, step) {
    const msg = Buffer.alloc(8);
    msg.writeBigUInt64BE(BigInt(step));
    const h = crypto.createHmac('sha1', key).update(msg).digest();
    const o = h[h.length - 1] & 15;
    const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
    return String(n % 1000000).padStart(6, '0');
}

async function submit(page, selector = '#submit') {
    await Promise.all([page.waitForNavigation(), page.click(selector)]);
}

(async () => {
    const profile = fs.mkdtempSync(path.join(outDir, 'profile-'));
    const context = await launch(profile);
    const problems = [];
    const page = context.pages()[0] || (await context.newPage());
    // CSP violations and script errors are console errors; failed loads (a favicon's 401) are not.
    page.on('console', (m) => {
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
            problems.push(m.text());
    });
    try {
        await page.goto(setupUrl);
        await page.fill('#password', password);
        await page.fill('#password_confirm', password);
        await submit(page);
        check(page.url() === base + '/', 'signed in after setup: ' + page.url());

        await page.goto(base + '/account/mfa');
        check((await page.textContent('h1')).includes('Set up two-step verification'), 'enrolment page title');
        await page.waitForFunction(() => {
            const img = document.querySelector('#qr');
            return img && img.complete && img.naturalWidth > 0;
        });
        check(await page.isVisible('#qr'), 'the QR code is visible');
        const box = await page.locator('#qr').boundingBox();
        check(box && box.width >= 200 && box.height >= 200, 'the QR code is large enough to scan');
        await page.screenshot({ path: path.join(outDir, 'mfa-1-enrol.png'), fullPage: true });

        const secret = (await page.textContent('#secret')).trim();
        note(secret.replace(/\s/g, ''));
        let step = Math.floor(Date.now() / 30000);
        if (Date.now() / 1000 - step * 30 > 25) { // too close to the end of the step: wait for the next one
            await new Promise((r) => setTimeout(r, 6000));
            step = Math.floor(Date.now() / 30000);
        }
        await page.fill('#code', totp(base32Decode(secret), step));
        await submit(page);
        check((await page.textContent('h1')).includes('recovery codes'), 'recovery codes page');
        const codes = (await page.textContent('#codes')).trim().split(/\s+/);
        codes.forEach(note);
        check(codes.length === 10, 'ten recovery codes, got ' + codes.length);
        await page.screenshot({ path: path.join(outDir, 'mfa-2-recovery.png'), fullPage: true });

        await submit(page, '#continue');
        check((await page.textContent('#user')).trim() === username, 'backend names the user');
        check((await page.textContent('#headers')).includes('x-portier-jwt-assertion'), 'backend got the JWT');
        for (const c of await context.cookies(base))
            if (c.name.startsWith('__Host-portier'))
                note(c.value);
        check(problems.length === 0, 'no console errors / CSP violations: ' + problems.join('; '));
        console.log('mfa browser flow ok');
    } finally {
        await context.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
})().catch((e) => {
    console.error(e.stack || String(e));
    process.exit(1);
});

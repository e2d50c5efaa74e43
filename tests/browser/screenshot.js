// Usage: node screenshot.js URL OUT.png [WIDTHxHEIGHT] [light|dark]
// Opens URL in headless Chromium (see lib.js) and saves a full-page screenshot; exits non-zero on failure.
// Also reports console errors and CSP violations, which our pages must not produce.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { launch } = require('./lib');

async function main() {
    const [url, out, size = '1280x800', scheme = 'light'] = process.argv.slice(2);
    if (!url || !out || !/^\d+x\d+$/.test(size) || !['light', 'dark'].includes(scheme)) {
        console.error('usage: node screenshot.js URL OUT.png [WIDTHxHEIGHT] [light|dark]');
        process.exit(2);
    }
    const [width, height] = size.split('x').map(Number);
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'portier-shot-'));
    let context;
    let problems = 0;
    try {
        context = await launch(profile, { viewport: { width, height }, colorScheme: scheme });
        const page = context.pages()[0] || (await context.newPage());
        // A failed sub-resource is reported with its URL (the browser's own favicon probe is not a problem).
        page.on('response', (r) => {
            if (r.status() >= 400 && r.url() !== url && new URL(r.url()).pathname !== '/favicon.ico') {
                problems++;
                console.error(`sub-resource ${r.status()}: ${r.url()}`);
            }
        });
        page.on('console', (msg) => {
            if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) {
                problems++;
                console.error(`console error: ${msg.text()}`);
            }
        });
        page.on('pageerror', (e) => {
            problems++;
            console.error(`page error: ${e.message}`);
        });
        const res = await page.goto(url, { waitUntil: 'load' });
        if (!res)
            throw new Error(`no response for ${url}`);
        await page.screenshot({ path: out, fullPage: true });
        console.log(`${res.status()} ${url} -> ${out}`);
    } finally {
        if (context)
            await context.close();
        fs.rmSync(profile, { recursive: true, force: true });
    }
    if (problems)
        process.exitCode = 1;
}

main().catch((e) => {
    console.error(e.message || e);
    process.exit(1);
});

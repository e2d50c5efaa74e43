// Headless Chromium for portier's browser tests: playwright-core driving Debian's /usr/bin/chromium.
// launch(tmpDir) returns a persistent BrowserContext whose profile lives in tmpDir (a fresh directory per test,
// so no cookies leak between tests); the caller closes it with `await context.close()`.
'use strict';

const { chromium } = require('playwright-core');

const CHROMIUM = process.env.PORTIER_CHROMIUM || '/usr/bin/chromium';
const ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];

async function launch(tmpDir, options = {}) {
    if (!tmpDir)
        throw new Error('launch(tmpDir): a fresh profile directory is required');
    return chromium.launchPersistentContext(tmpDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: ARGS,
        ignoreHTTPSErrors: true,
        ...options,
    });
}

module.exports = { launch, CHROMIUM, ARGS };

// Drives one scenario in headless Debian Chromium and prints one JSON result on stdout:
//   node sdk/e2e/run-scenario.mjs '{"url": "...", "scenario": "stall", "server": "http://127.0.0.1:8090", ...}'
// Scenarios: play (to the end), stall (release the held segment holdMs after the picture froze),
// startup, seek, switch (rendition), fatal, close (page closed mid-play). The page's own
// measurements (window.__truth, from sdk/e2e/truth.js) come back as the ground truth.
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const spec = JSON.parse(process.argv[2]);
const deadline = Date.now() + (spec.timeoutMs ?? 45000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, check, every = 50) {
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

const control = async (path, method = 'GET') => {
  const response = await fetch(`${spec.server}/_control/${path}`, { method });
  if (!response.ok) throw new Error(`control ${path}: ${response.status}`);
  return response.json();
};

const userDataDir = mkdtempSync(join(tmpdir(), 'openqoe-chromium-'));
const browser = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--autoplay-policy=no-user-gesture-required',
  ],
});
const result = { scenario: spec.scenario, console: [], actions: {} };
try {
  await browser.addInitScript({ content: readFileSync(join(here, 'truth.js'), 'utf8') });
  const page = browser.pages()[0] || (await browser.newPage());
  page.on('console', (m) => result.console.push(`${m.type()}: ${m.text()}`.slice(0, 300)));
  page.on('pageerror', (e) => result.console.push(`pageerror: ${e.message}`));
  // What the SDK sent (each attempt), for diagnosis: event type, time, id and data.
  result.sent = [];
  // What a player sent to a CMCD event target (pages with no SDK): each request's records.
  result.cmcd = [];
  page.on('request', (request) => {
    if (request.url().includes('/v1/cmcd')) {
      const records = (request.postData() || '').split('\n').filter((line) => line.trim());
      result.cmcd.push({ t: Date.now(), method: request.method(), records });
      return;
    }
    if (request.method() !== 'POST' || !request.url().includes('/v1/events')) return;
    try {
      const body = JSON.parse(request.postData() || '{}');
      for (const e of body.events || []) {
        result.sent.push({ type: e.event_type, t: e.event_time, id: e.event_id, seq: e.sequence, data: e.data });
      }
    } catch {
      result.sent.push({ type: 'unparsed', size: (request.postData() || '').length });
    }
  });
  await page.goto(spec.url);
  const truth = () => page.evaluate(() => window.__truth);
  const state = () =>
    page.evaluate(() => ({
      viewId: window.__openqoe && window.__openqoe.viewId,
      stats: window.__openqoe && window.__openqoe.client && { ...window.__openqoe.client.stats },
      log: window.__openqoe ? window.__openqoe.log : [],
      currentTime: document.querySelector('video').currentTime,
    }));
  const firstFrame = () => until('the first frame', async () => (await truth()).firstFrame);
  const playFor = async (ms) => {
    const start = (await truth()).lastFrame;
    await until(`${ms} ms of playback`, async () => (await truth()).lastFrame - start >= ms);
  };
  const ended = () => until('ended', async () => (await truth()).ended);
  result.viewIds = [];
  const noteView = async () => {
    const { viewId } = await state();
    if (viewId && !result.viewIds.includes(viewId)) result.viewIds.push(viewId);
  };

  switch (spec.scenario) {
    case 'play':
      await firstFrame();
      await noteView();
      await ended();
      break;
    case 'startup':
      await firstFrame();
      await noteView();
      await playFor(1000);
      break;
    case 'stall': {
      await firstFrame();
      await noteView();
      await until('the held segment', async () =>
        (await control(`log?run=${spec.run}`)).requests.some((r) => r.held));
      // Released once the picture has stayed frozen for holdMs: the stall the page sees is
      // holdMs + delivery. A render hiccup while media is still buffered ahead (frames
      // resume by themselves) is not the held segment's freeze, and does not count.
      result.actions.frozenAtRelease = await until(`the picture frozen for ${spec.holdMs} ms`, async () => {
        const frozen = await page.evaluate(() => window.__truth.frozenMs());
        return frozen >= spec.holdMs ? frozen : 0;
      }, 20);
      result.actions.releaseRequested = Date.now();
      await control(`release?run=${spec.run}`, 'POST');
      await until('playback again', async () =>
        (await truth()).gaps.some((g) => g.end >= result.actions.releaseRequested));
      await playFor(1000);
      break;
    }
    case 'seek':
      await firstFrame();
      await noteView();
      await playFor(1000);
      result.actions.seekAt = Date.now();
      await page.evaluate((to) => { document.querySelector('video').currentTime = to; }, spec.seekTo);
      await until('seeked', async () => (await truth()).seeks.some((s) => s.end));
      await playFor(1000);
      break;
    case 'switch':
      await firstFrame();
      await noteView();
      await playFor(spec.switchAfterMs ?? 1500);
      result.actions.switchAt = Date.now();
      await page.evaluate((h) => window.__openqoe.setRendition(h), spec.switchTo);
      await until(`${spec.switchTo}p on screen`, async () => (await truth()).sizes.some((s) => s.height === spec.switchTo));
      await playFor(1500);
      break;
    case 'fatal':
      await until('a fatal error', async () => {
        const { log } = await state();
        return log.some((l) => l.kind === 'fatal_error') || (await truth()).errors.length > 0;
      });
      await noteView();
      await sleep(500);
      break;
    case 'close':
      await firstFrame();
      await noteView();
      await playFor(2000);
      break;
    default:
      throw new Error(`unknown scenario ${spec.scenario}`);
  }
  if (spec.cmcdUntil) {
    // A CMCD page: until the player has sent a record with this text (e.g. Shaka's msd, which
    // rides on the record after the first playing state).
    await until(`a CMCD record with ${spec.cmcdUntil}`, async () =>
      result.cmcd.some((request) => request.records.some((r) => r.includes(spec.cmcdUntil))));
  }
  await noteView();
  Object.assign(result, await state(), { truth: await truth() });
  if (spec.scenario === 'close') {
    // The page goes away mid-play: only its pagehide flush (beacon / keepalive) can tell.
    result.actions.closedAt = Date.now();
    await page.close({ runBeforeUnload: true });
    await sleep(1500); // let the beacon leave before the browser does
  } else {
    // The app's own teardown: the explicit end event, then the last flush.
    result.actions.destroyAt = Date.now();
    await page.evaluate(async () => {
      const limit = new Promise((resolve) => setTimeout(() => resolve('flush timed out'), 10000));
      const teardown = (async () => {
        if (window.__openqoe.tracker) await window.__openqoe.tracker.destroy();
        if (window.__openqoe.client) await window.__openqoe.client.flush();
      })();
      return Promise.race([teardown, limit]);
    });
    result.stats = (await state()).stats;
  }
  result.ok = true;
} catch (error) {
  result.ok = false;
  result.error = String(error && error.stack ? error.stack : error);
  try {
    const page = browser.pages()[0];
    if (page) Object.assign(result, await page.evaluate(() => ({ truth: window.__truth, log: window.__openqoe && window.__openqoe.log })));
  } catch {
    // the page may be gone; the error says enough
  }
} finally {
  await browser.close().catch((e) => result.console.push(`browser close: ${e.message}`));
  rmSync(userDataDir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(result.ok ? 0 : 1);

// Shared by the demo pages: options from the query string (over /demo/config.js defaults),
// the OpenQoE client, and window.__openqoe for the browser tests.
(function () {
  const q = new URLSearchParams(location.search);
  const defaults = window.OPENQOE_DEMO || {};
  const num = (name, fallback) => (q.has(name) ? Number(q.get(name)) : fallback);
  const faults = q.get('faults');
  // A fault spec goes in front of the media path, so relative playlist URLs carry it.
  const mediaBase = faults ? `/f/${faults}/media/` : '/media/';

  const options = {
    collectorUrl: q.get('collector') || defaults.collectorUrl || 'http://127.0.0.1:8080',
    ingestKey: q.get('key') || defaults.ingestKey || 'demo-ingest-key',
    orgId: q.get('org') || defaults.orgId || 'demo',
    src: q.get('src'),
    mediaBase,
    rate: num('rate', 1),
    autoplay: q.get('autoplay') !== '0',
    // Small buffer goals, so a held segment turns into a stall.
    bufferS: num('buffer', 0),
    // Give up in seconds instead of the players' patient defaults (tests of fatal errors).
    fastFail: q.get('fastfail') === '1',
    // Pin a rendition by height (e.g. 360); the players' ABR is off while pinned.
    level: q.has('level') ? Number(q.get('level')) : null,
    videoId: q.get('video') || 'demo-video',
    heartbeatMs: num('heartbeat', 10000),
    flushMs: num('flush', 1000),
    debug: q.get('debug') === '1',
  };

  const log = [];
  const note = (kind, detail) => {
    log.push({ t: Date.now(), kind, detail });
    const out = document.getElementById('log');
    if (out) out.textContent += `${new Date().toISOString().slice(11, 23)} ${kind} ${detail ? JSON.stringify(detail) : ''}\n`;
  };

  function createClient(appName) {
    // Without the bundle (sdk not built) the page still plays: handy to study a player alone.
    if (!window.OpenQoE) {
      note('no_sdk');
      return null;
    }
    return OpenQoE.createClient({
      collectorUrl: options.collectorUrl,
      ingestKey: options.ingestKey,
      orgId: options.orgId,
      env: 'demo',
      appName,
      appVersion: '1.0.0',
      heartbeatIntervalMs: options.heartbeatMs,
      flushIntervalMs: options.flushMs,
      batchSize: 10,
      debug: options.debug,
    });
  }

  // dash.js and Video.js reset playbackRate when they attach: set the default rate too, and
  // again once media is loaded.
  function applyRate(video) {
    if (options.rate === 1) return;
    const set = () => {
      video.defaultPlaybackRate = options.rate;
      if (video.playbackRate !== 0) video.playbackRate = options.rate;
    };
    set();
    for (const name of ['loadedmetadata', 'canplay']) video.addEventListener(name, set, { once: true });
  }

  function play(video) {
    if (!options.autoplay) return;
    note('play_request');
    const result = video.play();
    if (result && result.catch) result.catch((e) => note('play_rejected', String(e)));
  }

  function expose(parts) {
    window.__openqoe = Object.assign({ log, options }, parts, {
      get viewId() {
        return parts.tracker ? parts.tracker.viewId : null;
      },
    });
    note('ready', { viewId: window.__openqoe.viewId });
  }

  function meta(durationMs) {
    return { video: { id: options.videoId, title: 'OpenQoE test pattern', durationMs, streamType: 'vod' } };
  }

  window.OpenQoEDemo = { options, note, log, createClient, applyRate, play, expose, meta };
})();

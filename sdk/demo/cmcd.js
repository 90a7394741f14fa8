// Shared by the CMCD pages (cmcd-*.html): no OpenQoE SDK. The player itself reports CMCD v2
// event-mode records (CTA-5004-B) to the collector's /v1/cmcd/<ingest key> endpoint; this file
// only builds that event target from the same query options as the SDK pages (common.js).
(function () {
  const { options, log, note } = OpenQoEDemo;
  const q = new URLSearchParams(location.search);

  // The CMCD session id is the view's key at the collector (with the content id): the page
  // picks it, so the browser tests can find the view (qoe.views session_id).
  const sid = q.get('sid') || crypto.randomUUID();

  function target(player) {
    const query = new URLSearchParams({ player, env: 'demo' });
    return {
      sid,
      cid: options.videoId,
      url: `${options.collectorUrl}/v1/cmcd/${encodeURIComponent(options.ingestKey)}?${query}`,
      // Play-state changes, errors, interval reports and bitrate changes: what our views use.
      events: ['ps', 'e', 't', 'bc'],
      // Seconds between interval reports (`t`); the players' defaults are 10-30 s.
      interval: q.has('interval') ? Number(q.get('interval')) : 10,
    };
  }

  // window.__openqoe for the browser driver (sdk/e2e/run-scenario.mjs): no tracker and no client
  // (the player reports by itself), viewId is the CMCD session id.
  function expose(parts) {
    window.__openqoe = Object.assign({ log, options, tracker: null, client: null, viewId: sid, sid }, parts);
    note('ready', { sid });
  }

  window.OpenQoECmcd = { target, expose, sid };
})();

// Injected before any page script (playwright addInitScript): what really happened on screen,
// measured independently of the SDK. Presented frames come from requestVideoFrameCallback, so
// a frozen frame is a stall even when the player says it is playing (dash.js) or never fires
// `waiting` (Shaka). All times are epoch ms, comparable with event times and the media server.
(() => {
  // No new frame for this long while playing = frozen. Gaps are recorded from here; the tests
  // count a stall from 500 ms (a loaded machine has render hiccups of 250-350 ms).
  const GAP_MS = 200;
  const truth = (window.__truth = {
    playRequests: [],
    firstFrame: null,
    frames: 0,
    lastFrame: null,
    sizes: [], // { t, width, height } when the presented frame size changes
    gaps: [], // { start, end, seeking } frozen stretches after the first frame
    seeks: [], // { start, end }
    waits: [], // epoch ms of the element's `waiting` events (it ran out of data)
    ended: null,
    errors: [],
    // Times of the media element's `play` and `playing` events (what the players report).
    playEvents: [],
    playing: [],
  });
  const now = () => performance.timeOrigin + performance.now();
  const play = HTMLMediaElement.prototype.play;
  HTMLMediaElement.prototype.play = function (...args) {
    truth.playRequests.push(Date.now());
    return play.apply(this, args);
  };

  function watch(video) {
    if (video.__truthWatched) return;
    video.__truthWatched = true;
    let seekingSince = null;
    let seekedDuringGap = false;
    video.addEventListener('seeking', () => {
      seekingSince = Date.now();
      seekedDuringGap = true;
      truth.seeks.push({ start: seekingSince, end: null });
    });
    video.addEventListener('seeked', () => {
      const open = truth.seeks[truth.seeks.length - 1];
      if (open && open.end === null) open.end = Date.now();
      seekingSince = null;
    });
    video.addEventListener('ended', () => (truth.ended = Date.now()));
    // A freeze while the element waits for data is a stall even under the 500 ms that
    // render hiccups of a loaded machine reach (those come without `waiting`).
    video.addEventListener('waiting', () => truth.waits.push(Date.now()));
    video.addEventListener('play', () => truth.playEvents.push(Date.now()));
    video.addEventListener('playing', () => truth.playing.push(Date.now()));
    video.addEventListener('error', () => truth.errors.push({ t: Date.now(), code: video.error && video.error.code }));
    const onFrame = (_now, meta) => {
      const t = performance.timeOrigin + meta.expectedDisplayTime;
      if (truth.firstFrame === null) truth.firstFrame = t;
      if (truth.lastFrame !== null && t - truth.lastFrame > GAP_MS) {
        truth.gaps.push({ start: truth.lastFrame, end: t, seeking: seekedDuringGap || seekingSince !== null });
      }
      seekedDuringGap = false;
      const size = truth.sizes[truth.sizes.length - 1];
      if (!size || size.width !== meta.width || size.height !== meta.height) {
        truth.sizes.push({ t, width: meta.width, height: meta.height });
      }
      truth.frames += 1;
      truth.lastFrame = t;
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  }

  // How long the picture has been frozen while it should be moving (0: it is moving).
  truth.frozenMs = () => {
    const video = document.querySelector('video');
    if (!video || truth.lastFrame === null || video.paused || video.ended) return 0;
    const since = now() - truth.lastFrame;
    return since > GAP_MS ? since : 0;
  };

  new MutationObserver(() => document.querySelectorAll('video').forEach(watch)).observe(document, {
    childList: true,
    subtree: true,
  });
  document.addEventListener('DOMContentLoaded', () => document.querySelectorAll('video').forEach(watch));
})();

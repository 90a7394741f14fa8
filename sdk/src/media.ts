/** The `<video>` element side, shared by every adapter: play state, seeks, position, frames. */
import { type ErrorFamily, type FrameGap, INTENT_WINDOW_MS, type PlayerProbe, type Rendition, type ViewTracker } from './tracker.js';

export interface MediaListenOptions {
  /** Report `waiting` as a stall (off for Shaka, which stalls with playbackRate 0 instead). */
  stalls?: boolean;
  /** Report the element's own errors (off where the player library reports them better). */
  errors?: boolean;
  /** Resolution from videoWidth/videoHeight on `resize` (progressive files: no rendition list). */
  resize?: boolean;
  /** New `src` on the element starts a new view (off where the library owns the source). */
  sourceChanges?: boolean;
  /** `playing` counts only while this says so (Shaka: not while it is buffering). */
  playingGate?: () => boolean;
  /** Watch every presented frame (the tracker's frozen-frame check). */
  watchFrames?: boolean;
}

export interface MediaListener {
  /** Playback runs: the first frame is taken from the next presented frame. */
  playing(): void;
  /** The app asked to play (a play() call, and what it returned); the view starts if the element confirms it. */
  noteIntent(result?: unknown): void;
  off(): void;
}

interface FrameMetadata {
  expectedDisplayTime?: number;
  /** Size of the presented frame, media pixels. */
  width?: number;
  height?: number;
}

/** Frozen stretches shorter than this are not kept (render hiccups). */
const FRAME_GAP_RECORD_MS = 250;
const MAX_FRAME_GAPS = 16;

/** One presented frame: when it is displayed (monotonic ms) and its size. */
export interface PresentedFrame {
  at: number;
  width?: number;
  height?: number;
}

type FrameVideo = HTMLVideoElement & {
  requestVideoFrameCallback?(cb: (now: number, meta: FrameMetadata) => void): number;
};

export { INTENT_WINDOW_MS };

/** A first frame not seen by requestVideoFrameCallback by then (hidden tab) is taken from `playing`. */
export const FIRST_FRAME_FALLBACK_MS = 1000;

/**
 * Presented video frames, from requestVideoFrameCallback where the browser has it: the
 * picture the viewer sees, which is what startup and frozen-frame stalls are about.
 * Times are performance.now() milliseconds, the tracker's monotonic clock.
 */
export class FrameClock {
  lastAt: number | undefined;
  /** Size of the last presented frame. */
  last: PresentedFrame | undefined;
  private readonly waiters: ((frame: PresentedFrame) => void)[] = [];
  private running = false;
  private continuous = false;
  private gaps: FrameGap[] = [];

  constructor(private readonly video: FrameVideo) {}

  /** Intervals of at least FRAME_GAP_RECORD_MS between presented frames since the last call. */
  takeGaps(): FrameGap[] {
    return this.gaps.splice(0);
  }

  get supported(): boolean {
    return typeof this.video.requestVideoFrameCallback === 'function';
  }

  /** True when every presented frame is seen (`last` is the frame on screen now). */
  get watching(): boolean {
    return this.continuous && this.supported;
  }

  /** Calls `fn` with the display time (and size) of the next presented frame. */
  next(fn: (frame: PresentedFrame) => void): void {
    this.waiters.push(fn);
    this.request();
  }

  /** Keeps `lastAt` current for as long as the element lives. */
  watch(): void {
    this.continuous = true;
    this.request();
  }

  private request(): void {
    if (this.running || !this.supported) return;
    this.running = true;
    this.video.requestVideoFrameCallback?.((now, meta) => {
      this.running = false;
      const at = typeof meta.expectedDisplayTime === 'number' ? meta.expectedDisplayTime : now;
      const frame: PresentedFrame = { at, width: meta.width, height: meta.height };
      if (this.continuous && this.lastAt !== undefined && at - this.lastAt >= FRAME_GAP_RECORD_MS) {
        this.gaps.push({ start: this.lastAt, end: at });
        if (this.gaps.length > MAX_FRAME_GAPS) this.gaps.shift();
      }
      this.lastAt = at;
      this.last = frame;
      for (const fn of this.waiters.splice(0)) fn(frame);
      if (this.continuous || this.waiters.length > 0) this.request();
    });
  }
}

const clocks = new WeakMap<HTMLVideoElement, FrameClock>();

export function frameClockOf(video: HTMLVideoElement): FrameClock {
  let clock = clocks.get(video);
  if (!clock) {
    clock = new FrameClock(video);
    clocks.set(video, clock);
  }
  return clock;
}

const MEDIA_ERROR_FAMILY: Record<number, ErrorFamily> = { 1: 'other', 2: 'network', 3: 'decode', 4: 'media' };

function bufferAhead(video: HTMLMediaElement): number | undefined {
  const t = video.currentTime;
  const ranges = video.buffered;
  for (let i = 0; i < ranges.length; i++) {
    if (ranges.start(i) <= t + 0.1 && t < ranges.end(i)) return Math.round((ranges.end(i) - t) * 1000);
  }
  return ranges.length > 0 ? 0 : undefined;
}

function quality(video: HTMLVideoElement): VideoPlaybackQuality | undefined {
  return typeof video.getVideoPlaybackQuality === 'function' ? video.getVideoPlaybackQuality() : undefined;
}

export function mediaProbe(video: HTMLVideoElement, overrides: Partial<PlayerProbe> = {}): PlayerProbe {
  const frames = frameClockOf(video);
  return {
    lastFrameAt: () => frames.lastAt,
    frameGaps: () => frames.takeGaps(),
    positionMs: () => (Number.isFinite(video.currentTime) ? Math.round(video.currentTime * 1000) : undefined),
    durationMs: () =>
      video.duration === Infinity ? Infinity : Number.isFinite(video.duration) ? Math.round(video.duration * 1000) : undefined,
    bufferMs: () => bufferAhead(video),
    droppedFrames: () => quality(video)?.droppedVideoFrames,
    decodedFrames: () => quality(video)?.totalVideoFrames,
    sourceUrl: () => video.currentSrc || video.src || undefined,
    autoplay: () => video.autoplay,
    preload: () => video.preload || undefined,
    ...overrides,
  };
}

/** Wires the element's events to the tracker. */
export function listenMedia(video: HTMLVideoElement, tracker: ViewTracker, options: MediaListenOptions = {}): MediaListener {
  // The position before a seek: at `seeking`, currentTime is already the target.
  let position: number | undefined;
  const notePosition = (): void => {
    if (!video.seeking && Number.isFinite(video.currentTime)) position = Math.round(video.currentTime * 1000);
  };
  // currentSrc is absolute; the attribute may be relative and is set before currentSrc.
  const sourceOf = (): string => {
    if (video.currentSrc) return video.currentSrc;
    const attribute = video.getAttribute('src');
    if (!attribute) return '';
    try {
      return new URL(attribute, video.baseURI).href;
    } catch {
      return attribute;
    }
  };
  let source = sourceOf();
  const frames = frameClockOf(video);
  if (options.watchFrames) frames.watch();
  const gate = (): boolean => options.playingGate?.() !== false;
  // The first frame is the first frame presented after the play request (what the
  // viewer sees): `playing` can come before it (Shaka at playbackRate 0) or after it
  // (hls.js skipping a start gap shows a frame, then seeks).
  let awaitingFirstFrame = false;
  let fallback: ReturnType<typeof setTimeout> | undefined;
  const awaitFirstFrame = (): void => {
    if (awaitingFirstFrame || !frames.supported || !tracker.isStarting) return;
    awaitingFirstFrame = true;
    frames.next(({ at }) => {
      if (!awaitingFirstFrame) return;
      awaitingFirstFrame = false;
      clearTimeout(fallback);
      if (tracker.isStarting && !video.paused) tracker.playing(at);
    });
  };
  // The app's play() is the moment of the play request, but only the element's `play`
  // event (a task queued after it, late on a busy page) says that playback goes ahead:
  // a play() refused by the autoplay policy starts no view.
  let intentAt: number | undefined;
  const noteIntent = (result?: unknown): void => {
    intentAt ??= tracker.monotonic();
    tracker.playIntent(intentAt);
    // A refused play() (autoplay policy, no source) leaves no intent behind.
    if (result instanceof Promise) {
      result.then(undefined, () => {
        if (tracker.isStarting) return;
        intentAt = undefined;
        tracker.playIntent(undefined);
      });
    }
  };
  const playIntent = (): void => {
    const at = intentAt !== undefined && tracker.monotonic() - intentAt < INTENT_WINDOW_MS ? intentAt : undefined;
    intentAt = undefined;
    tracker.playRequested(at);
    awaitFirstFrame();
  };
  const playing = (): void => {
    if (!gate()) return;
    if (tracker.hasStarted || !frames.supported) {
      tracker.playing();
      return;
    }
    // No frame callback by then (a hidden tab renders no frames): take `playing`.
    const signalled = tracker.monotonic();
    clearTimeout(fallback);
    fallback = setTimeout(() => {
      if (tracker.isStarting && !video.paused && gate()) {
        awaitingFirstFrame = false;
        tracker.playing(signalled);
      }
    }, FIRST_FRAME_FALLBACK_MS);
    awaitFirstFrame();
  };
  // The app's play() is the play intent; the element's `play` event is a task queued
  // after it, late on a busy page.
  const restorePlay = wrapMethod(video, 'play', (play) =>
    function (this: unknown, ...args: unknown[]) {
      noteIntent();
      const result = play.apply(this, args);
      noteIntent(result);
      return result;
    },
  );
  const handlers: Record<string, () => void> = {
    // hls.js jumps a start gap right after the first frame, before any timeupdate: the
    // position at play and playing makes that a jump of a few hundred ms, not a seek.
    play: () => {
      notePosition();
      playIntent();
    },
    playing: () => {
      notePosition();
      playing();
    },
    pause: () => {
      // At the end the element pauses too; that is "ended", not a pause.
      if (!video.ended) tracker.paused();
    },
    seeking: () => tracker.seekStart(position),
    seeked: () => {
      position = Math.round(video.currentTime * 1000);
      tracker.seekEnd(position);
    },
    timeupdate: () => {
      notePosition();
      tracker.timeUpdate();
    },
    ended: () => tracker.ended(),
    loadedmetadata: () => tracker.ready(),
  };
  if (options.stalls !== false) handlers.waiting = () => tracker.stallStart();
  if (options.resize) {
    handlers.resize = () => {
      if (video.videoWidth && video.videoHeight) tracker.rendition({ width: video.videoWidth, height: video.videoHeight });
    };
  }
  if (options.errors !== false) {
    handlers.error = () => {
      const error = video.error;
      if (!error) return;
      tracker.error({
        fatal: error.code !== 1,
        family: MEDIA_ERROR_FAMILY[error.code] ?? 'other',
        code: error.code,
        message: error.message,
        context: { source_url: video.currentSrc },
      });
    };
  }
  if (options.sourceChanges) {
    handlers.loadstart = () => {
      const next = sourceOf();
      if (source !== '' && next !== source) tracker.sourceChanged();
      source = next;
    };
  }
  for (const [name, fn] of Object.entries(handlers)) video.addEventListener(name, fn);
  // Attached after playback began (late script, autoplay): catch up.
  if (!video.paused) {
    tracker.playRequested();
    if (video.readyState >= 3 && gate()) tracker.playing();
  }
  return {
    playing,
    noteIntent,
    off: () => {
      for (const [name, fn] of Object.entries(handlers)) video.removeEventListener(name, fn);
      clearTimeout(fallback);
      restorePlay();
    },
  };
}

/** The longest a selected rendition may wait for its first frame before it is taken as shown. */
export const RENDITION_WAIT_MAX_MS = 30_000;

export interface OnScreenOptions {
  /**
   * A rendition of the size already on screen shows no change to wait for. `buffer`
   * (players that announce a *selection*): once the buffer ahead at selection time has
   * played. `now` (players that announce what is playing, but early: dash.js
   * QUALITY_CHANGE_RENDERED): at once.
   */
  sameSize?: 'buffer' | 'now';
}

/**
 * Reports a rendition when its picture is on screen: at the first presented frame of its
 * size (requestVideoFrameCallback; the element's `resize` where that is missing, which
 * comes when the frame is decoded, ahead of the frames queued before it). For players
 * that announce a rendition before it shows: when they select it (Shaka `variantchanged`
 * and `adaptation`, VHS `mediachange`), or when it is appended over the playing position
 * (dash.js fast switching).
 */
export function renditionOnScreen(
  video: HTMLVideoElement,
  tracker: ViewTracker,
  options: OnScreenOptions = {},
): { announce(rendition: Rendition): void; off(): void } {
  const frames = frameClockOf(video);
  let pending: Rendition | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let watching = false;
  const apply = (): void => {
    clearTimeout(timer);
    if (pending) tracker.rendition(pending);
    pending = undefined;
  };
  const elementSize = (): PresentedFrame => ({ at: 0, width: video.videoWidth, height: video.videoHeight });
  const shows = (r: Rendition, frame: PresentedFrame): boolean =>
    r.height === frame.height && (!r.width || r.width === frame.width);
  // The element's size changes when the frame is decoded, a little ahead of its display.
  const onScreen = (): PresentedFrame => (frames.watching && frames.last?.height ? frames.last : elementSize());
  const watchFrames = (): void => {
    if (watching) return;
    watching = true;
    frames.next((frame) => {
      watching = false;
      if (!pending) return;
      if (shows(pending, frame.height ? frame : elementSize())) apply();
      else watchFrames();
    });
  };
  const onResize = (): void => {
    if (!frames.supported && pending && shows(pending, elementSize())) apply();
  };
  video.addEventListener('resize', onResize);
  return {
    announce(rendition) {
      if (!tracker.hasStarted) {
        // Before the first frame the selection is what will be shown first.
        pending = undefined;
        tracker.rendition(rendition);
        return;
      }
      pending = rendition;
      clearTimeout(timer);
      const sameSize = shows(rendition, onScreen());
      if (sameSize && options.sameSize === 'now') {
        apply();
        return;
      }
      const wait = sameSize ? (bufferAhead(video) ?? 0) / (video.playbackRate || 1) : RENDITION_WAIT_MAX_MS;
      timer = setTimeout(apply, Math.min(RENDITION_WAIT_MAX_MS, wait));
      if (!sameSize) watchFrames();
    },
    off() {
      clearTimeout(timer);
      pending = undefined;
      video.removeEventListener('resize', onResize);
    },
  };
}

type Method = (...args: unknown[]) => unknown;

/**
 * Replaces `target[name]` on the instance by `wrap(original)`, for calls the player
 * announces with no event; returns the function that puts the original back.
 */
export function wrapMethod(target: object, name: string, wrap: (original: Method) => Method): () => void {
  const record = target as Record<string, unknown>;
  const original = record[name];
  if (typeof original !== 'function') return () => undefined;
  const own = Object.prototype.hasOwnProperty.call(target, name);
  record[name] = wrap(original as Method);
  return () => {
    if (own) record[name] = original;
    else delete record[name];
  };
}

/** Destroy for adapters: unwire, then end the view and flush. */
export function withCleanup(tracker: ViewTracker, ...cleanups: (() => void)[]): { readonly viewId: string; destroy(): Promise<void> } {
  return {
    get viewId() {
      return tracker.viewId;
    },
    async destroy() {
      for (const cleanup of cleanups) cleanup();
      await tracker.destroy();
    },
  };
}

/** The `<video>` element side, shared by every adapter: play state, seeks, position, frames. */
import type { ErrorFamily, PlayerProbe, ViewTracker } from './tracker.js';

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
  return {
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

/** Wires the element's events to the tracker; returns the function that unwires them. */
export function listenMedia(video: HTMLVideoElement, tracker: ViewTracker, options: MediaListenOptions = {}): () => void {
  let position: number | undefined;
  let source = video.currentSrc || video.getAttribute('src') || '';
  const handlers: Record<string, () => void> = {
    play: () => tracker.playRequested(),
    playing: () => {
      if (options.playingGate?.() !== false) tracker.playing();
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
      if (!video.seeking) position = Math.round(video.currentTime * 1000);
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
      const next = video.currentSrc || video.getAttribute('src') || '';
      if (source !== '' && next !== source) tracker.sourceChanged();
      source = next;
    };
  }
  for (const [name, fn] of Object.entries(handlers)) video.addEventListener(name, fn);
  // Attached after playback began (late script, autoplay): catch up.
  if (!video.paused) {
    tracker.playRequested();
    if (video.readyState >= 3 && options.playingGate?.() !== false) tracker.playing();
  }
  return () => {
    for (const [name, fn] of Object.entries(handlers)) video.removeEventListener(name, fn);
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

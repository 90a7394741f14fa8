/**
 * dash.js: renditions from QUALITY_CHANGE_RENDERED (the representation played, its
 * declared bandwidth), reported when its picture is on screen: with fast switching
 * (dash.js's default) an up-switch is appended over the buffer ahead, and the event comes
 * as soon as the new segment covering the position has loaded, while the frames already
 * queued still show the old one. With separate audio, dash.js can report "playing" and
 * move currentTime over a frozen video frame, so decoded frames are cross-checked.
 */
import type { Client } from '../client.js';
import { listenMedia, mediaProbe, renditionOnScreen, withCleanup } from '../media.js';
import { type ErrorFamily, type Rendition, type TrackOptions, type Tracker, ViewTracker } from '../tracker.js';

interface DashRepresentation {
  bandwidth: number;
  width?: number;
  height?: number;
  frameRate?: number;
}

/** The part of a dash.js MediaPlayer the adapter uses. */
export interface DashPlayerLike {
  on(type: string, listener: (event: never) => void, scope?: object): void;
  off(type: string, listener: (event: never) => void, scope?: object): void;
  getVersion?(): string;
  getSource?(): unknown;
  getCurrentRepresentationForType?(type: 'video'): DashRepresentation | null;
}

interface DashErrorEvent {
  error?: { code?: number; message?: string; data?: unknown } | string;
}

/** How long a frame may stay frozen while "playing" before it is a stall (ms). */
export const DASH_FROZEN_FRAME_MS = 500;

export function dashErrorFamily(code: number | undefined, message = ''): ErrorFamily {
  if (code === undefined) return /network|download|fetch/i.test(message) ? 'network' : 'other';
  if ([10, 11, 12, 25, 29, 31, 32, 34].includes(code)) return 'manifest';
  if ([15, 16, 17, 18, 19, 26, 27, 28].includes(code)) return 'network';
  if ([20, 21, 22, 23, 35].includes(code)) return 'media';
  if (code === 24 || (code >= 100 && code < 200)) return 'drm';
  return 'other';
}

/** dash.js getters throw until a source is attached ("You must first call attachSource()"). */
function ask<T>(getter: () => T): T | undefined {
  try {
    return getter();
  } catch {
    return undefined;
  }
}

function representationRendition(r: DashRepresentation): Rendition {
  return { bitrate: r.bandwidth, width: r.width, height: r.height, framerate: r.frameRate || undefined };
}

export function trackDashJs(
  client: Client,
  player: DashPlayerLike,
  video: HTMLVideoElement,
  options: TrackOptions = {},
): Tracker {
  const tracker = new ViewTracker(
    client,
    { name: 'dash.js', version: ask(() => player.getVersion?.()), frozenFrameMs: DASH_FROZEN_FRAME_MS },
    mediaProbe(video, {
      rendition: () => {
        const r = ask(() => player.getCurrentRepresentationForType?.('video'));
        return r ? representationRendition(r) : undefined;
      },
      sourceUrl: () => currentSource() ?? (video.currentSrc || undefined),
    }),
    options,
  );
  function currentSource(): string | undefined {
    const s = ask(() => player.getSource?.());
    return typeof s === 'string' ? s : undefined;
  }
  let source = currentSource();
  // The event says the position reached the new representation: with the same picture
  // size there is nothing later to wait for.
  const onScreen = renditionOnScreen(video, tracker, { sameSize: 'now' });
  const listeners: [string, (event: never) => void][] = [
    [
      'qualityChangeRendered',
      (e: { mediaType: string; newRepresentation?: DashRepresentation }) => {
        if (e.mediaType !== 'video' || !e.newRepresentation) return;
        onScreen.announce(representationRendition(e.newRepresentation));
      },
    ],
    [
      'error',
      (e: DashErrorEvent) => {
        const error = typeof e.error === 'string' ? { message: e.error } : (e.error ?? {});
        const code = 'code' in error ? error.code : undefined;
        // dash.js raises "error" once its own retries are exhausted: playback cannot go on.
        tracker.error({ fatal: true, family: dashErrorFamily(code, error.message), code, message: error.message });
      },
    ],
    [
      'manifestLoaded',
      () => {
        tracker.ready();
        // Live manifests reload from the same URL; only a new URL is a new source.
        const next = currentSource();
        if (source !== undefined && next !== undefined && next !== source) tracker.sourceChanged();
        source = next ?? source;
      },
    ],
  ];
  for (const [name, fn] of listeners) player.on(name, fn);
  const media = listenMedia(video, tracker, { errors: true, watchFrames: true });
  return withCleanup(tracker, media.off, onScreen.off, () => {
    for (const [name, fn] of listeners) player.off(name, fn);
  });
}

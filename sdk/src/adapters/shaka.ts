/**
 * Shaka Player: stalls from its `buffering` event (Shaka pauses by setting
 * playbackRate to 0, so the element never fires `waiting`), renditions from the active
 * variant track on `adaptation` / `variantchanged`.
 */
import type { Client } from '../client.js';
import { listenMedia, mediaProbe, renditionOnScreen, withCleanup, wrapMethod } from '../media.js';
import { type ErrorFamily, type Rendition, type TrackOptions, type Tracker, ViewTracker } from '../tracker.js';

interface ShakaTrack {
  active: boolean;
  type?: string;
  bandwidth: number;
  videoBandwidth?: number | null;
  width?: number | null;
  height?: number | null;
  frameRate?: number | null;
}

interface ShakaError {
  severity?: number;
  category?: number;
  code?: number;
  message?: string;
  data?: unknown[];
}

/** The part of a shaka.Player the adapter uses. */
export interface ShakaPlayerLike {
  addEventListener(type: string, listener: (event: Event) => void): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
  getVariantTracks(): ShakaTrack[];
  getAssetUri?(): string | null;
  isBuffering?(): boolean;
  constructor: { version?: string };
}

// shaka.util.Error.Category and Severity.
const CATEGORY_FAMILY: Record<number, ErrorFamily> = {
  1: 'network',
  2: 'other',
  3: 'media',
  4: 'manifest',
  5: 'media',
  6: 'drm',
  7: 'other',
};
const CRITICAL = 2;
// LOAD_INTERRUPTED, OPERATION_ABORTED: a newer load() replaced this one; not a failure.
const INTERRUPTED = new Set([7000, 7001]);

export function shakaErrorFamily(category: number | undefined): ErrorFamily {
  return (category !== undefined && CATEGORY_FAMILY[category]) || 'other';
}

function activeRendition(player: ShakaPlayerLike): Rendition | undefined {
  const active = player.getVariantTracks().find((t) => t.active);
  if (!active) return undefined;
  return {
    bitrate: active.videoBandwidth || active.bandwidth,
    width: active.width ?? undefined,
    height: active.height ?? undefined,
    framerate: active.frameRate ?? undefined,
  };
}

export function trackShaka(
  client: Client,
  player: ShakaPlayerLike,
  video: HTMLVideoElement,
  options: TrackOptions = {},
): Tracker {
  const tracker = new ViewTracker(
    client,
    { name: 'shaka-player', version: player.constructor.version },
    mediaProbe(video, { sourceUrl: () => player.getAssetUri?.() ?? undefined, rendition: () => activeRendition(player) }),
    options,
  );
  let buffering = player.isBuffering?.() ?? false;
  let asset = player.getAssetUri?.() ?? undefined;
  // While Shaka buffers, the element may still fire `playing` at playbackRate 0.
  const media = listenMedia(video, tracker, { stalls: false, errors: false, playingGate: () => !buffering });
  const onScreen = renditionOnScreen(video, tracker);
  const report = (detail: ShakaError): void =>
    tracker.error({
      fatal: detail.severity === CRITICAL,
      family: shakaErrorFamily(detail.category),
      code: detail.code,
      message: detail.message,
      context: { category: detail.category, severity: detail.severity },
    });
  const rendition = (): void => {
    const active = activeRendition(player);
    if (active) onScreen.announce(active);
  };
  const listeners: [string, (event: Event) => void][] = [
    [
      'buffering',
      (event) => {
        buffering = Boolean((event as Event & { buffering?: boolean }).buffering);
        if (buffering) tracker.stallStart();
        // Shaka resumes by restoring playbackRate: no `playing` event from the element.
        else if (!video.paused) media.playing();
      },
    ],
    ['adaptation', rendition],
    ['variantchanged', rendition],
    ['loaded', () => tracker.ready()],
    [
      'loading',
      () => {
        const next = player.getAssetUri?.() ?? undefined;
        if (asset !== undefined && next !== undefined && next !== asset) tracker.sourceChanged();
        asset = next ?? asset;
      },
    ],
    [
      'error',
      (event) => report((event as Event & { detail?: ShakaError }).detail ?? {}),
    ],
  ];
  for (const [name, fn] of listeners) player.addEventListener(name, fn);
  // A failed load() (manifest 404, unsupported content) rejects its promise and fires no
  // `error` event.
  const restoreLoad = wrapMethod(player, 'load', (load) =>
    function (this: unknown, ...args: unknown[]) {
      return (load.apply(this, args) as Promise<unknown>).catch((error: unknown) => {
        const detail = (error ?? {}) as ShakaError;
        if (!INTERRUPTED.has(detail.code ?? -1)) report({ ...detail, severity: detail.severity ?? CRITICAL });
        throw error;
      });
    },
  );
  return withCleanup(tracker, media.off, onScreen.off, restoreLoad, () => {
    for (const [name, fn] of listeners) player.removeEventListener(name, fn);
  });
}

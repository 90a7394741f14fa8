/**
 * Video.js (with its VHS engine for HLS and DASH): media events from the tech's
 * `<video>`, errors from the player (VHS reports them there), renditions from
 * `vhs.playlists.media()` on `mediachange`: the playlist now in use, its declared
 * BANDWIDTH. Video.js's quality-level list says which levels are *enabled*, not which
 * one plays, so it is not used.
 */
import type { Client } from '../client.js';
import { listenMedia, mediaProbe, renditionOnScreen, withCleanup, wrapMethod } from '../media.js';
import { type ErrorFamily, type Rendition, type TrackOptions, type Tracker, ViewTracker } from '../tracker.js';

interface VhsPlaylist {
  attributes?: { BANDWIDTH?: number; RESOLUTION?: { width: number; height: number }; 'FRAME-RATE'?: number };
}

/** `error.metadata` of Video.js 8 / VHS errors (videojs.Error types). */
interface VhsErrorMetadata {
  errorType?: string;
  requestType?: string;
  status?: number;
}

interface VhsError {
  code?: number;
  message?: string;
  status?: number;
  metadata?: VhsErrorMetadata;
}

interface Vhs {
  /** The multivariant / media playlist loader (VHS re-exposes it as `playlists`). */
  playlists?: {
    media(): VhsPlaylist | undefined;
    on(type: string, fn: () => void): void;
    off?(type: string, fn: () => void): void;
    error?: VhsError | string;
  };
}

interface VjsTech {
  el(): Element;
  vhs?: Vhs;
}

/** The part of a Video.js player the adapter uses. */
export interface VideoJsPlayerLike {
  on(type: string, fn: () => void): void;
  off(type: string, fn: () => void): void;
  tech(safety?: unknown): VjsTech | undefined;
  error(): { code: number; message?: string; metadata?: VhsErrorMetadata | null } | null;
  currentSrc?(): string;
}

/** How long the picture may stay frozen while "playing" before it is a stall (ms). */
export const VHS_FROZEN_FRAME_MS = 500;

const CODE_FAMILY: Record<number, ErrorFamily> = { 1: 'other', 2: 'network', 3: 'decode', 4: 'media', 5: 'drm' };

/** VHS request types (`metadata.requestType`) that fetch a playlist or manifest. */
const MANIFEST_REQUESTS = new Set(['hls-playlist', 'dash-manifest', 'dash-sidx', 'content-steering-manifest']);

/** The family of a videojs.Error type (`metadata.errorType`), if it tells. */
function errorTypeFamily(metadata: VhsErrorMetadata | undefined): ErrorFamily | undefined {
  const type = metadata?.errorType;
  if (!type) return undefined;
  if (type.startsWith('network')) return MANIFEST_REQUESTS.has(metadata.requestType ?? '') ? 'manifest' : 'network';
  if (/playlistparser|manifestparser|steeringparser/.test(type)) return 'manifest';
  if (type === 'streamingfailedtodecryptsegment') return 'drm';
  if (/transmux|append|codecs|selectnextsegment/.test(type)) return 'media';
  return 'other';
}

export function videoJsErrorFamily(code: number, message = '', metadata?: VhsErrorMetadata): ErrorFamily {
  const typed = errorTypeFamily(metadata);
  if (typed) return typed;
  if (/playlist|manifest/i.test(message)) return 'manifest';
  return CODE_FAMILY[code] ?? 'other';
}

function techOf(player: VideoJsPlayerLike): VjsTech | undefined {
  // Video.js asks plugins to acknowledge that the tech is internal API.
  return player.tech({ IWillNotUseThisInPlugins: true });
}

function playlistRendition(vhs: Vhs | undefined): Rendition | undefined {
  const attributes = vhs?.playlists?.media()?.attributes;
  if (!attributes) return undefined;
  return {
    bitrate: attributes.BANDWIDTH,
    width: attributes.RESOLUTION?.width,
    height: attributes.RESOLUTION?.height,
    framerate: attributes['FRAME-RATE'],
  };
}

export function trackVideoJs(client: Client, player: VideoJsPlayerLike, options: TrackOptions = {}): Tracker {
  const tech = techOf(player);
  const video = tech?.el();
  if (!(video instanceof HTMLVideoElement)) {
    throw new Error('OpenQoE: trackVideoJs needs a Video.js player with the html5 tech');
  }
  const version = (globalThis as { videojs?: { VERSION?: string } }).videojs?.VERSION;
  const tracker = new ViewTracker(
    client,
    // VHS's quality change removes the whole buffer and re-fetches around the position:
    // the picture freezes, the element says `playing` at the new rendition's first frame
    // and can hold it again for a while without `waiting`. Presented frames tell.
    { name: 'video.js', version, frozenFrameMs: VHS_FROZEN_FRAME_MS },
    mediaProbe(video, {
      sourceUrl: () => player.currentSrc?.() || video.currentSrc || undefined,
      rendition: () => playlistRendition(techOf(player)?.vhs),
    }),
    options,
  );

  let hooked: Vhs | undefined;
  // A playlist that failed for good (a 404 master after maxPlaylistRetries) reaches the
  // player in one of two ways: VHS's own error (code 2, "HLS playlist request error",
  // with metadata), or, once the MediaSource is open, VHS ends the stream with
  // endOfStream('network') and the element's MEDIA_ERR_SRC_NOT_SUPPORTED (code 4, no
  // metadata) is what player.error() says. The loader's error is the cause then.
  let loaderError: VhsError | undefined;
  const onLoaderError = (): void => {
    const error = hooked?.playlists?.error;
    loaderError = typeof error === 'object' ? error : typeof error === 'string' ? { message: error } : undefined;
  };
  const onLoaderLoaded = (): void => {
    loaderError = undefined;
  };
  const onScreen = renditionOnScreen(video, tracker);
  const onMediaChange = (): void => {
    const rendition = playlistRendition(hooked);
    if (rendition) onScreen.announce(rendition);
  };
  const loaderEvents: [string, () => void][] = [
    ['mediachange', () => onMediaChange()],
    ['error', () => onLoaderError()],
    ['loadedplaylist', () => onLoaderLoaded()],
  ];
  const unhookVhs = (): void => {
    for (const [name, fn] of loaderEvents) hooked?.playlists?.off?.(name, fn);
  };
  const hookVhs = (): void => {
    const vhs = techOf(player)?.vhs;
    if (!vhs?.playlists || vhs === hooked) return;
    unhookVhs();
    hooked = vhs;
    loaderError = undefined;
    for (const [name, fn] of loaderEvents) vhs.playlists.on(name, fn);
    // Hooked after the loader failed before loading anything (a 404 master answered
    // before `loadstart`); an error from before a successful load is stale.
    if (vhs.playlists.error && !vhs.playlists.media()) onLoaderError();
    onMediaChange();
  };
  const onError = (): void => {
    const error = player.error();
    if (!error) return;
    // Video.js errors carry `metadata: null` unless VHS filled it in. Only the element's
    // "network" and "source not supported" can be the loader's doing.
    const own = error.metadata?.errorType ? error.metadata : undefined;
    const cause = !own && (error.code === 2 || error.code === 4) ? loaderError : undefined;
    const metadata = own ?? cause?.metadata;
    tracker.error({
      fatal: true,
      family: cause
        ? videoJsErrorFamily(cause.code ?? error.code, cause.message, metadata)
        : videoJsErrorFamily(error.code, error.message, metadata),
      code: error.code,
      message: cause?.message ?? error.message,
      context: {
        error_type: metadata?.errorType,
        request_type: metadata?.requestType,
        status: cause?.status ?? metadata?.status,
        element_message: cause ? error.message : undefined,
      },
    });
  };
  let source = player.currentSrc?.() || undefined;
  const onLoadStart = (): void => {
    const next = player.currentSrc?.() || undefined;
    if (source !== undefined && next !== undefined && next !== source) tracker.sourceChanged();
    source = next ?? source;
    hookVhs();
  };
  const playerEvents: [string, () => void][] = [
    ['loadstart', onLoadStart],
    ['loadedmetadata', hookVhs],
    ['error', onError],
  ];
  for (const [name, fn] of playerEvents) player.on(name, fn);
  hookVhs();
  // player.play() waits for VHS to load its playlists before it calls the element's
  // play(), so the element's `play` comes late: the play intent is the player's play().
  const media = listenMedia(video, tracker, { errors: false, sourceChanges: false, watchFrames: true });
  const restorePlay = wrapMethod(player, 'play', (play) =>
    function (this: unknown, ...args: unknown[]) {
      media.noteIntent();
      const result = play.apply(this, args);
      media.noteIntent(result);
      return result;
    },
  );
  return withCleanup(tracker, media.off, onScreen.off, restorePlay, () => {
    for (const [name, fn] of playerEvents) player.off(name, fn);
    unhookVhs();
  });
}

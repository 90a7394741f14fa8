/** @openqoe/sdk: QoE events from web players to an OpenQoE collector. */
export { Client, createClient, type ClientStats, type WireEvent, SDK_VERSION } from './client.js';
export { ConfigError, type ClientOptions, type ClientConfig } from './config.js';
export type { Tracker, TrackOptions, VideoMeta, Rendition, PlayerError, ErrorFamily } from './tracker.js';
export { ViewTracker } from './tracker.js';
export { stripUrl } from './privacy.js';
export { parseUserAgent } from './ua.js';
export type { Runtime } from './runtime.js';
export { trackHtml5 } from './adapters/html5.js';
export { trackVideoJs } from './adapters/videojs.js';
export { trackHlsJs } from './adapters/hlsjs.js';
export { trackDashJs } from './adapters/dashjs.js';
export { trackShaka } from './adapters/shaka.js';

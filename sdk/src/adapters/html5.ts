/** HTML5 `<video>`: progressive files or native HLS. */
import type { Client } from '../client.js';
import { listenMedia, mediaProbe, withCleanup } from '../media.js';
import { type TrackOptions, type Tracker, ViewTracker } from '../tracker.js';

export function trackHtml5(client: Client, video: HTMLVideoElement, options: TrackOptions = {}): Tracker {
  const tracker = new ViewTracker(client, { name: 'html5' }, mediaProbe(video), options);
  const media = listenMedia(video, tracker, { resize: true, sourceChanges: true });
  return withCleanup(tracker, media.off);
}

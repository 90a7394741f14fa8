/** The script-tag bundle's global `OpenQoE`. */
export { createClient, trackHtml5, trackVideoJs, trackHlsJs, trackDashJs, trackShaka, ConfigError, SDK_VERSION } from './index.js';

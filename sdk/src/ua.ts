/**
 * Device, OS and browser from the User-Agent string and, where the browser has them,
 * User-Agent Client Hints. Hand-rolled: the cases that matter for video (iPadOS posing
 * as macOS, Android tablets, browsers built on Chromium) fit in a page of rules, where
 * a general parser costs tens of kilobytes.
 */
import type { UserAgentDataLike } from './runtime.js';

export interface NameVersion {
  family: string;
  version?: string;
}

export interface Device {
  category: 'mobile' | 'tablet' | 'desktop' | 'tv' | 'other';
  name?: string;
  model?: string;
  manufacturer?: string;
}

export interface Platform {
  os: NameVersion;
  browser: NameVersion;
  device: Device;
}

function match(ua: string, re: RegExp): string | undefined {
  return re.exec(ua)?.[1];
}

function dotted(version: string | undefined): string | undefined {
  return version?.replace(/_/g, '.');
}

const BROWSERS: [string, RegExp][] = [
  // Order matters: each of these also contains "Chrome" or "Safari".
  ['Edge', /(?:Edg|EdgA|EdgiOS)\/([\d.]+)/],
  ['Opera', /(?:OPR|OPT|OPiOS)\/([\d.]+)/],
  ['Samsung Internet', /SamsungBrowser\/([\d.]+)/],
  ['Yandex', /YaBrowser\/([\d.]+)/],
  ['Chrome', /CriOS\/([\d.]+)/],
  ['Firefox', /(?:FxiOS|Firefox)\/([\d.]+)/],
  ['Chrome', /(?:HeadlessChrome|Chrome)\/([\d.]+)/],
  ['Safari', /Version\/([\d.]+).*Safari\//],
];

function browserFrom(ua: string): NameVersion {
  for (const [family, re] of BROWSERS) {
    const version = match(ua, re);
    if (version !== undefined) return { family, version };
  }
  if (/AppleWebKit/.test(ua) && /Mobile\//.test(ua)) return { family: 'WebView' };
  return { family: 'Other' };
}

const TV = /SmartTV|SMART-TV|Tizen.*TV|Web0S|webOS.*TV|HbbTV|AppleTV|CrKey|AFT[A-Z]|BRAVIA|Android TV|GoogleTV/i;

function manufacturerFromModel(model: string | undefined): string | undefined {
  if (!model) return undefined;
  if (/^(SM-|GT-|SAMSUNG)/i.test(model)) return 'Samsung';
  if (/^Pixel/i.test(model)) return 'Google';
  if (/^(Redmi|Mi |M\d{4}|2\d{3})/i.test(model)) return 'Xiaomi';
  if (/^(ONEPLUS|CPH|KB2|LE2)/i.test(model)) return 'OnePlus';
  if (/^(HUAWEI|ELE-|VOG-|ANE-)/i.test(model)) return 'Huawei';
  if (/^(moto|XT\d)/i.test(model)) return 'Motorola';
  if (/^Nokia/i.test(model)) return 'Nokia';
  return undefined;
}

/** Parses a User-Agent string. `maxTouchPoints` tells iPadOS from macOS (same UA). */
export function parseUserAgent(ua: string, maxTouchPoints = 0): Platform {
  const browser = browserFrom(ua);
  const ios = match(ua, /(?:iPhone|iPad|iPod)[^)]*? OS ([\d_]+)/);
  if (ios !== undefined || /iPhone|iPad|iPod/.test(ua)) {
    const ipad = /iPad/.test(ua);
    const name = ipad ? 'iPad' : /iPod/.test(ua) ? 'iPod' : 'iPhone';
    return {
      os: { family: ipad ? 'iPadOS' : 'iOS', version: dotted(ios) },
      browser: browser.family === 'Other' ? { family: 'WebView' } : browser,
      device: { category: ipad ? 'tablet' : 'mobile', name, model: name, manufacturer: 'Apple' },
    };
  }
  const mac = match(ua, /Mac OS X ([\d_.]+)/);
  if (mac !== undefined || /Macintosh/.test(ua)) {
    // iPadOS 13+ sends a Macintosh UA; only touch support gives it away.
    if (maxTouchPoints > 1) {
      return {
        os: { family: 'iPadOS' },
        browser,
        device: { category: 'tablet', name: 'iPad', model: 'iPad', manufacturer: 'Apple' },
      };
    }
    return {
      os: { family: 'macOS', version: dotted(mac) },
      browser,
      device: { category: 'desktop', name: 'Mac', manufacturer: 'Apple' },
    };
  }
  const android = match(ua, /Android ([\d.]+)/);
  if (android !== undefined || /Android/.test(ua)) {
    const model = match(ua, /Android [\d.]+; (?:[a-z]{2}[-_][a-z]{2}; )?([^;)]+?)(?: Build\/[^;)]*)?\)/i)?.trim();
    const realModel = model && model !== 'K' ? model : undefined;
    const tv = TV.test(ua);
    // Android phones put "Mobile" in the UA; tablets leave it out (Google's guidance).
    const category = tv ? 'tv' : /Mobile/.test(ua) ? 'mobile' : 'tablet';
    return {
      os: { family: 'Android', version: android },
      browser,
      device: {
        category,
        name: category === 'tablet' ? 'Android tablet' : category === 'tv' ? 'Android TV' : 'Android phone',
        model: realModel,
        manufacturer: manufacturerFromModel(realModel) ?? (/SamsungBrowser/.test(ua) ? 'Samsung' : undefined),
      },
    };
  }
  const windows = match(ua, /Windows NT ([\d.]+)/);
  if (windows !== undefined) {
    const version = windows === '10.0' ? '10' : windows === '6.3' ? '8.1' : windows === '6.1' ? '7' : windows;
    return { os: { family: 'Windows', version }, browser, device: { category: 'desktop', name: 'Windows PC' } };
  }
  if (/CrOS/.test(ua)) {
    return { os: { family: 'ChromeOS' }, browser, device: { category: 'desktop', name: 'Chromebook' } };
  }
  if (TV.test(ua)) {
    const family = /Tizen/.test(ua) ? 'Tizen' : /Web0S|webOS/i.test(ua) ? 'webOS' : 'Other';
    return { os: { family }, browser, device: { category: 'tv' } };
  }
  if (/Linux|X11/.test(ua)) {
    return { os: { family: 'Linux' }, browser, device: { category: 'desktop' } };
  }
  return { os: { family: 'Other' }, browser, device: { category: 'other' } };
}

const HINT_BRANDS: Record<string, string> = {
  'Microsoft Edge': 'Edge',
  Opera: 'Opera',
  'Samsung Internet': 'Samsung Internet',
  'Google Chrome': 'Chrome',
  Chromium: 'Chrome',
  HeadlessChrome: 'Chrome',
  YaBrowser: 'Yandex',
};

/**
 * Refines a parsed UA with Client Hints: Chromium freezes the UA string (Android model
 * "K", Windows "NT 10.0" for 11, reduced versions), the hints carry the real values.
 */
export async function withClientHints(base: Platform, hints: UserAgentDataLike | undefined): Promise<Platform> {
  if (!hints) return base;
  const out: Platform = { os: { ...base.os }, browser: { ...base.browser }, device: { ...base.device } };
  const brand = (hints.brands ?? []).find((b) => HINT_BRANDS[b.brand] !== undefined && b.brand !== 'Chromium') ??
    (hints.brands ?? []).find((b) => b.brand === 'Chromium');
  if (brand) out.browser = { family: HINT_BRANDS[brand.brand] ?? brand.brand, version: brand.version };
  if (typeof hints.getHighEntropyValues !== 'function') return out;
  try {
    const high = await hints.getHighEntropyValues(['platformVersion', 'model', 'fullVersionList']);
    const full = Array.isArray(high.fullVersionList)
      ? (high.fullVersionList as { brand: string; version: string }[]).find((b) => b.brand === brand?.brand)
      : undefined;
    if (full) out.browser.version = full.version;
    const platformVersion = typeof high.platformVersion === 'string' ? high.platformVersion : undefined;
    if (hints.platform === 'Windows' && platformVersion) {
      // Windows 11 reports platformVersion 13 or above (Microsoft's documented test).
      out.os.version = Number(platformVersion.split('.')[0]) >= 13 ? '11' : '10';
    } else if (platformVersion && (hints.platform === 'Android' || hints.platform === 'macOS')) {
      out.os.version = platformVersion;
    }
    if (typeof high.model === 'string' && high.model !== '') {
      out.device.model = high.model;
      out.device.manufacturer ??= manufacturerFromModel(high.model);
    }
  } catch {
    // The page's Permissions-Policy may refuse high-entropy hints; the low-entropy result stands.
  }
  return out;
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseUserAgent, withClientHints } from '../src/ua.js';
import { stripUrl } from '../src/privacy.js';

// Real User-Agent strings, as sent by the named browsers and devices.
const CASES: [string, string, number, string, string, string, string?][] = [
  // [label, UA, maxTouchPoints, os, browser, category, manufacturer]
  ['iPhone Safari',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1',
    5, 'iOS 17.4.1', 'Safari 17.4.1', 'mobile', 'Apple'],
  ['Chrome on iOS',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1',
    5, 'iOS 17.5', 'Chrome 126.0.6478.54', 'mobile', 'Apple'],
  ['Firefox on iOS',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15',
    5, 'iOS 16.6', 'Firefox 127.0', 'mobile', 'Apple'],
  ['Edge on iOS',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/125.2535.60 Mobile/15E148 Safari/605.1.15',
    5, 'iOS 17.5', 'Edge 125.2535.60', 'mobile', 'Apple'],
  ['iPad (old iPadOS UA)',
    'Mozilla/5.0 (iPad; CPU OS 12_5_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1',
    5, 'iPadOS 12.5.7', 'Safari 12.1.2', 'tablet', 'Apple'],
  ['iPadOS 17 (desktop-class UA + touch)',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
    5, 'iPadOS', 'Safari 17.4', 'tablet', 'Apple'],
  ['macOS Safari (same UA, no touch)',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15',
    0, 'macOS 10.15.7', 'Safari 17.4', 'desktop', 'Apple'],
  ['Android phone Chrome',
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36',
    5, 'Android 14', 'Chrome 126.0.6478.71', 'mobile', 'Google'],
  ['Android tablet Chrome (no "Mobile")',
    'Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36',
    5, 'Android 13', 'Chrome 125.0.0.0', 'tablet', 'Samsung'],
  ['Samsung Internet phone',
    'Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36',
    5, 'Android 14', 'Samsung Internet 25.0', 'mobile', 'Samsung'],
  ['Samsung Internet tablet',
    'Mozilla/5.0 (Linux; Android 13; SM-X906C) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Safari/537.36',
    5, 'Android 13', 'Samsung Internet 23.0', 'tablet', 'Samsung'],
  ['Chrome reduced UA on Android (model "K")',
    'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
    5, 'Android 10', 'Chrome 126.0.0.0', 'mobile'],
  ['Opera desktop',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/110.0.0.0',
    0, 'Windows 10', 'Opera 110.0.0.0', 'desktop'],
  ['Opera Android',
    'Mozilla/5.0 (Linux; Android 10; VOG-L29) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Mobile Safari/537.36 OPR/82.0.0.0',
    5, 'Android 10', 'Opera 82.0.0.0', 'mobile', 'Huawei'],
  ['Edge desktop',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.56',
    0, 'Windows 10', 'Edge 126.0.2592.56', 'desktop'],
  ['Edge Android',
    'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36 EdgA/126.0.0.0',
    5, 'Android 10', 'Edge 126.0.0.0', 'mobile'],
  ['Firefox Linux',
    'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0',
    0, 'Linux', 'Firefox 127.0', 'desktop'],
  ['Chrome macOS',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
    0, 'macOS 10.15.7', 'Chrome 126.0.0.0', 'desktop', 'Apple'],
  ['Headless Chromium (the test browser)',
    'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36',
    0, 'Linux', 'Chrome 156.0.0.0', 'desktop'],
  ['Samsung smart TV',
    'Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 85.0.4183.93/6.0 TV Safari/537.36',
    0, 'Tizen', 'Other', 'tv'],
];

function label(v: { family: string; version?: string }): string {
  return v.version ? `${v.family} ${v.version}` : v.family;
}

describe('user agent', () => {
  for (const [name, ua, touch, os, browser, category, manufacturer] of CASES) {
    it(name, () => {
      const p = parseUserAgent(ua, touch);
      assert.equal(label(p.os), os);
      assert.equal(label(p.browser), browser);
      assert.equal(p.device.category, category);
      if (manufacturer) assert.equal(p.device.manufacturer, manufacturer);
    });
  }

  it('refines Chromium browsers with Client Hints, high entropy values included', async () => {
    const base = parseUserAgent(
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0',
    );
    const hinted = await withClientHints(base, {
      brands: [
        { brand: 'Not/A)Brand', version: '8' },
        { brand: 'Chromium', version: '126' },
        { brand: 'Microsoft Edge', version: '126' },
      ],
      mobile: false,
      platform: 'Windows',
      getHighEntropyValues: () =>
        Promise.resolve({
          platformVersion: '15.0.0',
          model: '',
          fullVersionList: [{ brand: 'Microsoft Edge', version: '126.0.2592.87' }],
        }),
    });
    assert.equal(label(hinted.os), 'Windows 11');
    assert.equal(label(hinted.browser), 'Edge 126.0.2592.87');
  });

  it('takes the Android model from Client Hints when the UA says "K"', async () => {
    const base = parseUserAgent(
      'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36',
    );
    const hinted = await withClientHints(base, {
      brands: [{ brand: 'Google Chrome', version: '126' }],
      platform: 'Android',
      getHighEntropyValues: () => Promise.resolve({ platformVersion: '14.0.0', model: 'SM-S921B' }),
    });
    assert.equal(hinted.device.model, 'SM-S921B');
    assert.equal(hinted.device.manufacturer, 'Samsung');
    assert.equal(label(hinted.os), 'Android 14.0.0');
  });

  it('keeps the UA result when high-entropy hints are refused', async () => {
    const base = parseUserAgent('Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36');
    const hinted = await withClientHints(base, {
      brands: [{ brand: 'Chromium', version: '126' }],
      platform: 'Linux',
      getHighEntropyValues: () => Promise.reject(new Error('NotAllowedError')),
    });
    assert.equal(label(hinted.browser), 'Chrome 126');
    assert.equal(label(hinted.os), 'Linux');
  });
});

describe('url stripping', () => {
  it('drops query strings and fragments and keeps scheme, host and path', () => {
    assert.equal(stripUrl('https://cdn.example.com:8443/a/b.m3u8?token=x&u=1#frag'), 'https://cdn.example.com:8443/a/b.m3u8');
    assert.equal(stripUrl('https://user:pw@cdn.example.com/a.mpd'), 'https://cdn.example.com/a.mpd');
    assert.equal(stripUrl('/relative/seg.ts?sig=1'), '/relative/seg.ts');
    assert.equal(stripUrl('blob:https://example.com/1234-5678'), 'blob:');
    assert.equal(stripUrl(''), undefined);
  });
});

import { defineConfig, type Plugin } from 'vite';
import preact from '@preact/preset-vite';
import { VitePWA } from 'vite-plugin-pwa';
import { withIntegrity } from './scripts/precache-integrity.mjs';
import { wasmBytes } from './scripts/wasm-size.mjs';

const THEME = '#0b5d5b';

// The build's environment (the app's sources do not see Node's types).
declare const process: { env: Record<string, string | undefined> };

/**
 * The relays this build may talk to besides its own origin, for an app
 * served from a static origin apart from the relay (docs/DEPLOYMENT.md):
 * `KITH_RELAY_ORIGINS="https://relay.example.org"` (space-separated) at
 * build time. Unset, the app talks only to the origin that serves it.
 */
function relayOrigins(): Plugin {
  const given = (process.env.KITH_RELAY_ORIGINS ?? '').split(/[\s,]+/).filter(Boolean);
  for (const origin of given) {
    let url: URL | undefined;
    try {
      url = new URL(origin);
    } catch {
      url = undefined;
    }
    if (!url || !['https:', 'http:'].includes(url.protocol) || url.origin !== origin) {
      throw new Error(
        `KITH_RELAY_ORIGINS: "${origin}" is not an origin; give scheme, host and port only, like https://relay.example.org`,
      );
    }
  }
  return {
    name: 'kith-relay-origins',
    transformIndexHtml(html) {
      if (given.length === 0) return html;
      const marker = "connect-src 'self'";
      if (!html.includes(marker)) throw new Error(`index.html has no "${marker}" to extend`);
      return html.replace(marker, `${marker} ${given.join(' ')}`);
    },
  };
}

/** Where the build writes, once Vite knows (`--outDir` may move it). */
const output = { root: '.', outDir: 'dist' };
function rememberOutput(): Plugin {
  return {
    name: 'kith-remember-output',
    configResolved(config) {
      output.root = config.root;
      output.outDir = config.build.outDir;
    },
  };
}

export default defineConfig({
  define: {
    __KITH_WASM_BYTES__: JSON.stringify(wasmBytes()),
  },
  build: {
    target: 'es2020',
    sourcemap: false,
  },
  plugins: [
    rememberOutput(),
    relayOrigins(),
    preact(),
    VitePWA({
      strategies: 'generateSW',
      // The app asks before switching to a new version, so a reload never
      // throws away a reflection that is being written.
      registerType: 'prompt',
      injectRegister: false,
      // The glob below already precaches the icons.
      includeManifestIcons: false,
      manifest: {
        name: 'Kith',
        short_name: 'Kith',
        description: 'Share reflections with your learning alliance. Private, and works offline.',
        lang: 'en',
        start_url: '/',
        scope: '/',
        display: 'standalone',
        orientation: 'portrait',
        background_color: '#fbfaf7',
        theme_color: THEME,
        icons: [
          { src: '/icon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' },
          { src: '/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
          { src: '/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
          { src: '/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
        ],
      },
      workbox: {
        // Everything the app needs to start offline, the wasm core included.
        globPatterns: ['**/*.{html,js,css,wasm,svg,png}'],
        // (manifest.webmanifest is added by the plugin itself.)
        maximumFileSizeToCacheInBytes: 16 * 1024 * 1024,
        cleanupOutdatedCaches: true,
        navigateFallback: 'index.html',
        // The relay's API is never answered from a cache.
        navigateFallbackDenylist: [/^\/v1\//],
        runtimeCaching: [],
        manifestTransforms: [withIntegrity(() => output)],
        // One service worker file, with no script it loads at run time: the
        // release check hashes that one file.
        inlineWorkboxRuntime: true,
      },
    }),
  ],
});

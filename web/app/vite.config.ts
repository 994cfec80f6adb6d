import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';
import { VitePWA } from 'vite-plugin-pwa';

const THEME = '#0b5d5b';

export default defineConfig({
  build: {
    target: 'es2020',
    sourcemap: false,
  },
  plugins: [
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
      },
    }),
  ],
});

import type { ManifestTransform } from 'workbox-build';

export declare function withIntegrity(where: () => { root: string; outDir: string }): ManifestTransform;

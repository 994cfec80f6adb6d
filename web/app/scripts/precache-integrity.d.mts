import type { ManifestTransform } from 'workbox-build';

export declare const withIntegrity: ManifestTransform;

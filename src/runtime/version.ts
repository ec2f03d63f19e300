import { packageManifest } from '../adapters/package-root.ts';

/** The package version, from the package's package.json (found from the sources or the bundle). */
export const VERSION: string = packageManifest().version;

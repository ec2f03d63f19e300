export { defaultSampleSize, place, summarise } from './place.ts';
export { ClusterSnapshot } from './snapshot.ts';
export { CHECKS, CAPACITY_REASONS, compileQuery, pickDriver, labelMatches, type Query } from './checks.ts';
export * from './types.ts';

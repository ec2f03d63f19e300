export { place, summarise } from './place.ts';
export { CHECKS, CAPACITY_REASONS, pickDriver, labelMatches } from './checks.ts';
export * from './types.ts';

export { defaultSampleSize, FULL_SCAN_LIMIT, place, summarise } from './place.ts';
export { ClusterSnapshot } from './snapshot.ts';
export {
  CHECKS,
  compileQuery,
  cpuFits,
  createsInFlightBelowLimit,
  diskFits,
  driverAvailable,
  labelMatches,
  labelsMatch,
  memoryFits,
  notExcluded,
  pickDriver,
  vmSlotFree,
  workerActive,
  workerEligible,
  workerHealthy,
  zoneMatches,
  type Check,
  type Query,
} from './checks.ts';
export * from './types.ts';

import { DRIVER_NAMES, type DriverName } from '@aetherium/sdk';
import { useMemo } from 'react';
import { useWorkers } from '../api/queries.ts';

/**
 * What a VM can ask for on this fleet: the drivers and zones some worker has. A form offers only
 * those, so that it cannot make a VM that no worker could ever take.
 */
export function useFleetOptions(): { drivers: DriverName[]; zones: string[] } {
  const workers = useWorkers();
  return useMemo(() => {
    const drivers = new Set<string>();
    const zones = new Set<string>();
    for (const w of workers.data?.workers ?? []) {
      if (w.status === 'offline') continue;
      for (const c of w.capabilities) drivers.add(c);
      zones.add(w.zone);
    }
    return { drivers: DRIVER_NAMES.filter((d) => drivers.has(d)), zones: [...zones].sort() };
  }, [workers.data]);
}

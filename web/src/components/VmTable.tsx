import type { VmData } from '@aetherium/sdk';
import { Link } from 'react-router';
import { ago, mb } from './format.ts';
import { StatusBadge } from './ui.tsx';
import { VirtualTable } from './VirtualRows.tsx';

/** VMs in a table: name, status, size, where they run. */
export function VmTable({
  vms,
  label = 'VMs',
  maxHeight,
}: {
  vms: readonly VmData[];
  label?: string;
  maxHeight?: string;
}) {
  return (
    <VirtualTable
      label={label}
      rows={vms}
      rowKey={(vm) => vm.id}
      {...(maxHeight ? { maxHeight } : {})}
      header={
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Status</th>
          <th scope="col">Size</th>
          <th scope="col">Driver</th>
          <th scope="col">Worker</th>
          <th scope="col">Created</th>
        </tr>
      }
      row={(vm) => (
        <tr key={vm.id} data-testid={`vm-row-${vm.name}`} className="h-[41px]">
          <td className="max-w-56 truncate">
            <Link to={`/vms/${vm.id}`} className="link font-mono text-xs">
              {vm.name}
            </Link>
          </td>
          <td>
            <StatusBadge status={vm.status} />
          </td>
          <td className="whitespace-nowrap text-xs tabular-nums">
            {vm.vcpus} vCPU · {mb(vm.memory_mb)}
          </td>
          <td className="text-xs">{vm.driver ?? '—'}</td>
          <td className="max-w-48 truncate text-xs">
            {vm.worker_id ? (
              <Link to={`/workers/${encodeURIComponent(vm.worker_id)}`} className="link font-mono">
                {vm.worker_id}
              </Link>
            ) : (
              'not placed'
            )}
          </td>
          <td className="whitespace-nowrap text-xs">{ago(vm.created_at)}</td>
        </tr>
      )}
    />
  );
}

/** The boot waterfall `aetherium vm get` draws: offsets, steps and bars on one timeline. */
import { describe, expect, it } from 'vitest';
import { renderWaterfall } from '../src/cli/commands/vm.ts';

const at = (ms: number) => new Date(Date.UTC(2026, 11, 3, 10, 0, 0) + ms).toISOString();

describe('renderWaterfall', () => {
  it('puts each step on the timeline, the slow one as the long bar', () => {
    const text = renderWaterfall({
      accepted: at(0),
      placed: at(300),
      delivered: at(320),
      driver_started: at(330),
      agent_ready: at(2930),
      running: at(3000),
    });
    expect(text).toBe(
      [
        '',
        'boot (3.00 s from accepted to running):',
        '  accepted        10:00:00.000',
        '  placed          10:00:00.300  +300 ms  ███',
        '  delivered       10:00:00.320   +20 ms     █',
        '  driver_started  10:00:00.330   +10 ms     █',
        '  agent_ready     10:00:02.930  +2.60 s     ██████████████████████████',
        '  running         10:00:03.000   +70 ms                               █',
        '',
      ].join('\n'),
    );
  });

  it('leaves out phases not reached, and draws nothing without phases', () => {
    const text = renderWaterfall({ accepted: at(0), placed: at(1500) });
    expect(text).toContain('boot (1.50 s from accepted to placed):');
    expect(text).not.toContain('delivered');
    expect(renderWaterfall({})).toBe('');
    expect(renderWaterfall({ accepted: at(0) })).toBe(''); // a VM still waiting for a worker
  });
});

import { describe, expect, it } from 'vitest';
import { timeSlicer } from '../../src/gateway/time-slice.ts';

describe('time slicer', () => {
  it('within the slice the loop goes on without a turn of the event loop; past it, a turn runs (I/O, timers, corked writes)', async () => {
    let t = 0;
    const slice = timeSlicer(20, () => t);
    let turned = false;
    setImmediate(() => (turned = true));
    t = 19;
    await slice.maybeYield();
    expect(turned).toBe(false);
    t = 20;
    await slice.maybeYield();
    expect(turned).toBe(true);
    // A new slice starts after the yield.
    let again = false;
    setImmediate(() => (again = true));
    t = 39;
    await slice.maybeYield();
    expect(again).toBe(false);
    t = 40;
    await slice.maybeYield();
    expect(again).toBe(true);
  });
});

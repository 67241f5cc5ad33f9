import { neutronInUse } from '../../src/lab/neutron-underlay.js';
import { describeError } from '../../src/util/errors.js';

/**
 * One Neutron fixture runs on a machine at a time (its hypervisor namespaces have fixed names): the
 * test runner runs the files marked `weft-test: exclusive neutron-dataplane` one after another, and a
 * test started beside someone else's lab waits its turn here instead of failing on the busy fixture.
 */
export async function inNeutronTurn<T>(up: () => Promise<T>, timeoutMs = 20 * 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    while ((await neutronInUse()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5000));
    try {
      return await up();
    } catch (e) {
      if (!/already running/.test(describeError(e)) || Date.now() > deadline) throw e;
    }
  }
}

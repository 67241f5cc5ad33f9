import { neutronInUse } from '../../src/lab/neutron-underlay.js';

/**
 * One Neutron fixture runs on a machine at a time: a test that needs it waits its turn (another
 * Neutron test, or a helper's lab, may hold it) instead of failing on the busy fixture.
 */
export async function waitForNeutronFixture(timeoutMs = 20 * 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (await neutronInUse()) {
    if (Date.now() > deadline)
      throw new Error(
        `the Neutron fixture stayed in use for ${timeoutMs / 60_000} min (nhost1/fabric/extnet exist)`,
      );
    await new Promise((r) => setTimeout(r, 5000));
  }
}

import { WeftError } from '../util/errors.js';

/** The lab a command means when --name is not given: the only one up, else a clear error. */
export async function onlyLab(): Promise<string> {
  const { listLabs } = await import('../lab/lab.js');
  const labs = await listLabs();
  if (labs.length === 1) return labs[0]!;
  throw new WeftError(labs.length === 0 ? 'no lab is up' : `several labs are up (${labs.join(', ')})`, {
    hint: labs.length === 0 ? 'weft lab up --name NAME' : 'pass --name',
  });
}

import type { NetworkConfig } from '../config/network-config.js';
import { WeftError } from '../util/errors.js';
import { AutoBackend } from './auto.js';
import { HostGwBackend } from './host-gw.js';
import type { Backend } from './types.js';
import { VxlanBackend } from './vxlan.js';

export function createBackend(config: NetworkConfig): Backend {
  switch (config.backend.type) {
    case 'vxlan':
      return new VxlanBackend(config.backend.vni);
    case 'host-gw':
      return new HostGwBackend();
    case 'auto':
      return new AutoBackend(config.backend.vni);
    case 'neutron':
      throw new WeftError(
        'Backend.Type "neutron" needs a cloud provider, which this build does not configure yet',
        { hint: 'use vxlan, host-gw or auto' },
      );
  }
}

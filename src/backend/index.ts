import type { NetworkConfig } from '../config/network-config.js';
import { AutoBackend } from './auto.js';
import { HostGwBackend } from './host-gw.js';
import { NeutronBackend } from './neutron.js';
import type { Backend } from './types.js';
import { UdpBackend } from './udp.js';
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
      return new NeutronBackend();
    case 'udp':
      return new UdpBackend();
  }
}

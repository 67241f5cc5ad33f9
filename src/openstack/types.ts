/** Neutron v2.0 resources, as far as weft reads them. Field names are Neutron's. */

export interface Extension {
  alias: string;
  name: string;
  description?: string;
  updated?: string;
}

export interface FixedIp {
  subnet_id: string;
  ip_address: string;
}

export interface AddressPair {
  ip_address: string;
  /** Neutron fills in the port's MAC when it is left out. */
  mac_address?: string;
}

export interface Port {
  id: string;
  name: string;
  network_id: string;
  project_id?: string;
  mac_address: string;
  device_id: string;
  device_owner: string;
  status: string;
  fixed_ips: FixedIp[];
  allowed_address_pairs?: AddressPair[];
  port_security_enabled?: boolean;
  security_groups?: string[];
  revision_number: number;
}

export interface PortFilter {
  ipAddress?: string;
  subnetId?: string;
  macAddress?: string;
  deviceId?: string;
  /** Several owners are OR-ed. */
  deviceOwner?: string | string[];
  networkId?: string;
  name?: string;
  projectId?: string;
}

export interface Network {
  id: string;
  name: string;
  mtu?: number;
  subnets: string[];
  port_security_enabled?: boolean;
  revision_number: number;
}

export interface Subnet {
  id: string;
  name: string;
  network_id: string;
  cidr: string;
  ip_version: number;
  gateway_ip: string | null;
  revision_number: number;
}

export interface Route {
  destination: string;
  nexthop: string;
}

export interface Router {
  id: string;
  name: string;
  project_id?: string;
  routes: Route[];
  revision_number: number;
  external_gateway_info?: unknown;
}

export interface RouterInterfaceInfo {
  id: string;
  port_id: string;
  subnet_id: string;
  subnet_ids: string[];
  network_id: string;
}

/** device_owner values of a router's interfaces on internal subnets (legacy, DVR, HA). */
export const ROUTER_INTERFACE_OWNERS = [
  'network:router_interface',
  'network:router_interface_distributed',
  'network:ha_router_replicated_interface',
];

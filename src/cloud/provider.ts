/**
 * The cloud route provider: what the agent's `neutron` and `auto` backends call to let the cloud carry
 * pod traffic un-encapsulated (DESIGN.md "Cloud routing"; reference/openstack-neutron.md §3, §6).
 *
 * Two things make a cloud route pod traffic:
 *  1. anti-spoofing must accept pod source addresses on the node's own port
 *     (Neutron: allowed-address-pairs) — needed both for same-subnet peers (host-gw) and router peers;
 *  2. the router between subnets must know which node carries which pod subnet
 *     (Neutron: router extra routes, pod subnet → node IP).
 *
 * Everything a provider creates is recorded as owned (see ownership.ts); it never changes or removes a
 * route or pair it does not own, including an operator's or another cluster's route to the same
 * destination.
 */
import { WeftError } from '../util/errors.js';

/** A route on the cloud router: pod subnet → node IP. */
export interface CloudRoute {
  destination: string;
  nexthop: string;
}

export interface CloudNodeInfo {
  /** The cloud's handle for the node's interface (Neutron port ID). */
  portId: string;
  ip: string;
  mac: string;
  networkId: string;
  subnetId: string;
  subnetCidr: string;
  gatewayIp: string | undefined;
  /** The network's MTU as the cloud reports it (routed pods may use all of it). */
  mtu: number | undefined;
}

export interface CloudRouterInfo {
  id: string;
  name: string;
  /** Subnets attached to the router: peers there are reachable through it. */
  subnets: { id: string; cidr: string; interfaceIp: string }[];
  /** The router's address on the node's subnet: next hop for pod subnets of cross-subnet peers. */
  addressOnNodeSubnet: string;
}

/**
 * - `address-pairs`: pod subnets must be added to the port (ensurePodSubnetAllowed does it);
 * - `not-needed`: port security is off on the node's port, nothing filters pod sources;
 * - `unavailable`: port security is on but the cloud has no allowed-address-pairs extension: routed
 *   pod traffic will be dropped, so encapsulate instead.
 */
export type AntiSpoofMode = 'address-pairs' | 'not-needed' | 'unavailable';
/**
 * - `atomic`: extraroute-atomic (add/remove single routes, safe under concurrency);
 * - `locked-replace`: extraroute only: full-list replace under a cluster lock and If-Match revision guard;
 * - `unavailable`: no extraroute extension, or no router serves the node's subnet.
 */
export type RouteMode = 'atomic' | 'locked-replace' | 'unavailable';

export interface CloudCapabilities {
  provider: string;
  node: CloudNodeInfo;
  router: CloudRouterInfo | undefined;
  antiSpoofing: AntiSpoofMode;
  routes: RouteMode;
  /** The cloud can compare-and-swap updates on revision numbers (Neutron revision-if-match). */
  revisionGuard: boolean;
  /** Which of the relevant extensions the cloud advertises. */
  extensions: Record<string, boolean>;
  /**
   * Per-object limits. Neutron does not expose them in its API: these are its defaults
   * (`max_allowed_address_pair` 10, `max_routes` 30); the exhaustion errors are authoritative.
   */
  limits: { addressPairsPerPort: number; routesPerRouter: number; source: 'cloud-default' };
  /** Human-readable facts worth logging once at start ("no router serves subnet …"). */
  notes: string[];
}

/** How a peer's pod subnet can be reached without encapsulation. */
export type PeerPath = 'same-subnet' | 'cloud-router' | 'none';

/**
 * - `added`: created now, and recorded as owned;
 * - `present`: already there and owned by this cluster;
 * - `covered`: an existing pair not owned by weft already covers the CIDR (e.g. Magnum's cluster-wide pair);
 * - `external`: the very same route/pair exists but weft does not own it (operator, other cluster): left alone;
 * - `not-needed`: port security is off.
 */
export type EnsureResult = 'added' | 'present' | 'covered' | 'external' | 'not-needed';

export interface OwnedRoute extends CloudRoute {
  routerId: string;
  node: string;
  cluster: string;
  /** Whether the cloud currently has it (false = drift: ensureRoutes will re-add it). */
  present: boolean;
}
export interface OwnedPair {
  portId: string;
  ipAddress: string;
  node: string;
  cluster: string;
  present: boolean;
}
export interface OwnedObjects {
  routes: OwnedRoute[];
  pairs: OwnedPair[];
}

export interface CloudRouteProvider {
  readonly name: string;
  /** Finds the node's port and router, detects extensions; call once before anything else. */
  init(): Promise<CloudCapabilities>;
  /** init()'s result (throws if init has not run). */
  capabilities(): CloudCapabilities;
  /** Same subnet as this node, reachable through this node's cloud router, or neither. */
  classifyPeer(peerIp: string): PeerPath;
  /** Lets the node's port send and receive `podCidr` sources (idempotent). */
  ensurePodSubnetAllowed(podCidr: string): Promise<EnsureResult>;
  /** Removes the pair if (and only if) this node owns it. */
  removePodSubnetAllowed(podCidr: string): Promise<void>;
  /** Adds the routes to the node's router (idempotent); one result per route, in order. */
  ensureRoutes(routes: readonly CloudRoute[]): Promise<EnsureResult[]>;
  /** Removes the routes this node owns; routes it does not own are left alone. */
  removeRoutes(routes: readonly CloudRoute[]): Promise<void>;
  /** What this node owns, with whether the cloud still has each object. */
  listOwned(): Promise<OwnedObjects>;
  /** The node is leaving: remove every route and pair it owns. */
  releaseAll(): Promise<void>;
  /** `node` (of this cluster) is gone for good (its lease expired): remove what it owned. */
  reapNode(node: string): Promise<void>;
}

// ---------------------------------------------------------------------------------- errors

/** Base of the provider's errors; `code` is stable for programs, the message is for people. */
export class CloudProviderError extends WeftError {
  readonly code: string;
  constructor(code: string, message: string, hint: string, cause?: unknown) {
    super(message, cause === undefined ? { hint } : { hint, cause });
    this.code = code;
  }
}

/** The port already has as many allowed address pairs as the cloud allows. */
export class AllowedAddressPairExhausted extends CloudProviderError {
  constructor(portId: string, have: number, detail: string, cause?: unknown) {
    super(
      'AllowedAddressPairExhausted',
      `cannot add a pod subnet to port ${portId}: it has ${have} allowed address pairs and the cloud allows no more (${detail})`,
      'remove pairs nobody uses, ask the operator to raise max_allowed_address_pair, or use the vxlan backend for this node',
      cause,
    );
  }
}

/** The router already has as many routes as the cloud allows. */
export class RoutesExhausted extends CloudProviderError {
  constructor(routerId: string, have: number, adding: number, detail: string, cause?: unknown) {
    super(
      'RoutesExhausted',
      `cannot add ${adding} route(s) to router ${routerId}: it has ${have} routes and the cloud allows no more (${detail})`,
      'ask the operator to raise max_routes (default 30), put nodes on one subnet (host-gw needs no router routes), or use the vxlan backend across subnets',
      cause,
    );
  }
}

/** A Neutron extension the operation needs is not offered by this cloud. */
export class CloudExtensionMissing extends CloudProviderError {
  readonly alias: string;
  constructor(alias: string, forWhat: string) {
    super(
      'ExtensionMissing',
      `the cloud lacks the Neutron extension "${alias}", needed to ${forWhat}`,
      'use the vxlan backend (or auto, which encapsulates where the cloud cannot route), or ask the operator to enable it',
    );
    this.alias = alias;
  }
}

/** Port security is on, yet the port cannot take address pairs: routed pod traffic would be dropped. */
export class AddressPairAndPortSecurityRequired extends CloudProviderError {
  constructor(portId: string, detail: string, cause?: unknown) {
    super(
      'AddressPairAndPortSecurityRequired',
      `port ${portId} cannot accept pod subnets: ${detail}`,
      'enable port security on the port (so that address pairs can be set) or use the vxlan backend',
      cause,
    );
  }
}

/** No port of the cloud carries this node's address or MAC, or several do. */
export class NodePortNotFound extends CloudProviderError {
  constructor(message: string, hint: string) {
    super('NodePortNotFound', message, hint);
  }
}

/** Routes were asked for but no router serves the node's subnet (or the next hop is not on it). */
export class NoCloudRouter extends CloudProviderError {
  constructor(message: string, hint: string) {
    super('NoCloudRouter', message, hint);
  }
}

/** An object kept changing under us: the revision-guarded update did not succeed in N tries. */
export class CloudUpdateConflict extends CloudProviderError {
  constructor(what: string, tries: number) {
    super(
      'UpdateConflict',
      `${what} changed under every one of ${tries} revision-guarded updates`,
      'another client rewrites it continuously: find it (Neutron server log, request IDs) and stop it',
    );
  }
}

/**
 * The OpenStack Neutron cloud route provider.
 *
 * Who programs the router: **each node adds, and later removes, the one route to its own pod subnet**
 * (pod subnet → its own fixed IP) on the router that serves its own subnet. Why this and not "each node
 * adds routes for the peers it cannot reach directly":
 *  - one writer per route: a route's owner is the node it points to, which knows best when the route
 *    is right (its lease) and when it must go (it leaves, or its lease is reaped);
 *  - N routes for N nodes instead of up to N×(N-1) redundant writes racing on the same router;
 *  - the next hop is always on a subnet the router serves (we found the router through that subnet),
 *    so Neutron never rejects it as InvalidRoutes;
 *  - a node that dies without cleaning up is reaped by any surviving node (reapNode) from the
 *    ownership records, so nothing depends on the dead node.
 * The interface still takes route lists, and ownership is reference-counted per (route, node), so a
 * different policy (several nodes ensuring the same route) stays correct.
 *
 * Consistency:
 *  - address pairs are read-modify-written on the node's own port with `If-Match: revision_number=N`
 *    and retried on 412, so a concurrent writer (operator, Heat, another tool) never loses a pair and
 *    weft never drops a pair it did not create;
 *  - routes use extraroute-atomic (add_extraroutes / remove_extraroutes) when the cloud has it; otherwise
 *    full-list updates under a cluster-wide etcd lock per router, each guarded by If-Match and retried
 *    on 412 (the lock keeps weft's agents from retry storms; the guard protects writers outside weft);
 *  - an ownership record is written before an object is created and deleted after it is removed, so
 *    any observer that sees a weft object in the cloud also sees its record. A route or pair that exists
 *    with no record is someone else's ("external") and is never modified.
 */
import { Cidr, parseIPv4 } from '../util/ipv4.js';
import { NeutronApiError } from '../openstack/errors.js';
import { silentLogger, type Logger, type NeutronClient } from '../openstack/neutron.js';
import {
  ROUTER_INTERFACE_OWNERS,
  type AddressPair,
  type Port,
  type Route,
  type Router,
} from '../openstack/types.js';
import { sleep, type OwnershipStore } from './ownership.js';
import {
  AddressPairAndPortSecurityRequired,
  AllowedAddressPairExhausted,
  CloudExtensionMissing,
  CloudProviderError,
  CloudUpdateConflict,
  NoCloudRouter,
  NodePortNotFound,
  RoutesExhausted,
  type CloudCapabilities,
  type CloudRoute,
  type CloudRouteProvider,
  type CloudRouterInfo,
  type EnsureResult,
  type OwnedObjects,
  type OwnedPair,
  type OwnedRoute,
  type PeerPath,
} from './provider.js';

export interface NeutronProviderOptions {
  client: NeutronClient;
  /** Where ownership is recorded (EtcdOwnershipStore in the agent). */
  store: OwnershipStore;
  /** This cluster's name, recorded with every object. */
  cluster: string;
  /** This node's name (owner of what it creates); stable across restarts, e.g. the hostname. */
  node: string;
  /** The node's public (underlay) IP: its port is the one with this fixed IP. */
  publicIp: string;
  /** MAC of the interface carrying publicIp: used when no port has the IP (or several do). */
  mac?: string;
  /** Skip the lookup and use this port. */
  portId?: string;
  /** Skip the lookup and use this router. */
  routerId?: string;
  /** Behave as if the cloud lacked these extensions (e.g. ["extraroute-atomic"]). */
  disableExtensions?: readonly string[];
  /** Revision-guarded update attempts before giving up (default 16). */
  maxAttempts?: number;
  log?: Logger;
}

const RELEVANT = [
  'allowed-address-pairs',
  'port-security',
  'extraroute',
  'extraroute-atomic',
  'revision-if-match',
];
interface RouteRecord {
  cluster: string;
  node: string;
  routerId: string;
  destination: string;
  nexthop: string;
  createdAt: string;
}
interface PairRecord {
  cluster: string;
  node: string;
  portId: string;
  ipAddress: string;
  macAddress: string;
  createdAt: string;
}

export class NeutronRouteProvider implements CloudRouteProvider {
  readonly name = 'neutron';
  readonly #o: NeutronProviderOptions;
  readonly #client: NeutronClient;
  readonly #store: OwnershipStore;
  readonly #log: Logger;
  #caps: CloudCapabilities | undefined;
  #nodeSubnet: Cidr | undefined;
  #routerSubnets: Cidr[] = [];
  readonly #mutex = new KeyedMutex();

  constructor(o: NeutronProviderOptions) {
    this.#o = o;
    this.#client = o.client;
    this.#store = o.store;
    this.#log = o.log ?? silentLogger;
  }

  // ------------------------------------------------------------------------------- init
  async init(): Promise<CloudCapabilities> {
    const disabled = new Set(this.#o.disableExtensions ?? []);
    const have = new Set(
      (await this.#client.listExtensions()).map((e) => e.alias).filter((a) => !disabled.has(a)),
    );
    const extensions = Object.fromEntries(RELEVANT.map((a) => [a, have.has(a)]));
    const notes: string[] = [];
    if (disabled.size) notes.push(`treating extensions as absent: ${[...disabled].join(', ')}`);

    const port = await this.#findPort(notes);
    const fixed =
      port.fixed_ips.find((f) => f.ip_address === this.#o.publicIp) ??
      port.fixed_ips.find((f) => parseIPv4(f.ip_address) !== undefined);
    if (!fixed) {
      throw new NodePortNotFound(
        `port ${port.id} has no IPv4 fixed IP`,
        'weft routes IPv4 pod subnets: give the node an IPv4 address',
      );
    }
    const subnet = await this.#client.getSubnet(fixed.subnet_id);
    let mtu: number | undefined;
    try {
      mtu = (await this.#client.getNetwork(port.network_id)).mtu;
    } catch (e) {
      if (!(e instanceof NeutronApiError)) throw e;
      notes.push(`network ${port.network_id} not readable (${e.type}): MTU unknown`);
    }
    this.#nodeSubnet = Cidr.parse(subnet.cidr);

    let antiSpoofing: CloudCapabilities['antiSpoofing'];
    if (port.port_security_enabled === false) {
      antiSpoofing = 'not-needed';
      notes.push(
        `port security is off on port ${port.id}: no address pairs needed (and no security groups apply)`,
      );
    } else if (have.has('allowed-address-pairs')) antiSpoofing = 'address-pairs';
    else {
      antiSpoofing = 'unavailable';
      notes.push(
        'port security is on but the cloud has no allowed-address-pairs: routed pod traffic would be dropped',
      );
    }

    const router = await this.#findRouter(subnet.id, subnet.gateway_ip, notes);
    let routes: CloudCapabilities['routes'] = 'unavailable';
    if (!router)
      notes.push(`no router serves subnet ${subnet.cidr}: peers on other subnets must be encapsulated`);
    else if (have.has('extraroute-atomic')) routes = 'atomic';
    else if (have.has('extraroute')) {
      routes = 'locked-replace';
      notes.push(
        'no extraroute-atomic: route updates replace the whole list under a lock' +
          (have.has('revision-if-match')
            ? ' and a revision guard'
            : ' (no revision guard: writers outside weft may race)'),
      );
    } else notes.push('the cloud has no extraroute extension: the router cannot carry pod subnets');

    this.#caps = {
      provider: 'neutron',
      node: {
        portId: port.id,
        ip: fixed.ip_address,
        mac: port.mac_address,
        networkId: port.network_id,
        subnetId: subnet.id,
        subnetCidr: subnet.cidr,
        gatewayIp: subnet.gateway_ip ?? undefined,
        mtu,
      },
      router,
      antiSpoofing,
      routes,
      revisionGuard: have.has('revision-if-match'),
      extensions,
      limits: { addressPairsPerPort: 10, routesPerRouter: 30, source: 'cloud-default' },
      notes,
    };
    this.#log.info(
      { port: port.id, ip: fixed.ip_address, router: router?.id, antiSpoofing, routes, notes },
      'neutron cloud routing initialised',
    );
    return this.#caps;
  }

  async #findPort(notes: string[]): Promise<Port> {
    const { publicIp, mac, portId } = this.#o;
    if (portId) return this.#client.getPort(portId);
    let ports = (await this.#client.listPorts({ ipAddress: publicIp })).filter((p) =>
      p.fixed_ips.some((f) => f.ip_address === publicIp),
    );
    if (ports.length > 1 && mac)
      ports = ports.filter((p) => p.mac_address.toLowerCase() === mac.toLowerCase());
    if (ports.length === 1) return ports[0]!;
    if (ports.length > 1) {
      throw new NodePortNotFound(
        `${ports.length} Neutron ports have fixed IP ${publicIp} (${ports.map((p) => p.id).join(', ')})`,
        "overlapping networks: pass the node's MAC or the port ID explicitly",
      );
    }
    if (mac) {
      const byMac = await this.#client.listPorts({ macAddress: mac.toLowerCase() });
      if (byMac.length === 1) {
        notes.push(`no port has fixed IP ${publicIp}; found port ${byMac[0]!.id} by MAC ${mac}`);
        return byMac[0]!;
      }
      if (byMac.length > 1) {
        throw new NodePortNotFound(
          `${byMac.length} Neutron ports have MAC ${mac} and none has fixed IP ${publicIp}`,
          'pass the port ID explicitly',
        );
      }
    }
    throw new NodePortNotFound(
      `no Neutron port has fixed IP ${publicIp}${mac ? ` or MAC ${mac}` : ''}`,
      "check the node's public IP (--public-ip / the interface), and that the credentials belong to the VM's project (other projects' ports are invisible)",
    );
  }

  async #findRouter(
    subnetId: string,
    gatewayIp: string | null,
    notes: string[],
  ): Promise<CloudRouterInfo | undefined> {
    let routerId = this.#o.routerId;
    if (!routerId) {
      const ifaces = await this.#client.listPorts({ subnetId, deviceOwner: ROUTER_INTERFACE_OWNERS });
      const ids = [...new Set(ifaces.map((p) => p.device_id))];
      if (ids.length > 1) {
        const gw = ifaces.find((p) =>
          p.fixed_ips.some((f) => f.subnet_id === subnetId && f.ip_address === gatewayIp),
        );
        if (!gw) {
          notes.push(
            `several routers serve the node's subnet (${ids.join(', ')}) and none is its gateway: set routerId`,
          );
          return undefined;
        }
        notes.push(`several routers serve the node's subnet; using the gateway ${gw.device_id}`);
        routerId = gw.device_id;
      } else routerId = ids[0];
    }
    if (!routerId) return undefined;
    const router = await this.#client.getRouter(routerId);
    const ifaces = await this.#client.listPorts({
      deviceId: router.id,
      deviceOwner: ROUTER_INTERFACE_OWNERS,
    });
    const ipBySubnet = new Map<string, string>();
    for (const p of ifaces) for (const f of p.fixed_ips) ipBySubnet.set(f.subnet_id, f.ip_address);
    const subnets = (await this.#client.listSubnets([...ipBySubnet.keys()]))
      .filter((s) => s.ip_version === 4)
      .map((s) => ({ id: s.id, cidr: s.cidr, interfaceIp: ipBySubnet.get(s.id)! }));
    this.#routerSubnets = subnets.map((s) => Cidr.parse(s.cidr)).filter((c): c is Cidr => c !== undefined);
    const own = subnets.find((s) => s.id === subnetId);
    if (!own) {
      notes.push(`router ${router.id} has no interface on the node's subnet`);
      return undefined;
    }
    return { id: router.id, name: router.name, subnets, addressOnNodeSubnet: own.interfaceIp };
  }

  capabilities(): CloudCapabilities {
    if (!this.#caps)
      throw new CloudProviderError(
        'NotInitialised',
        'the Neutron provider was used before init()',
        'call init() first',
      );
    return this.#caps;
  }

  classifyPeer(peerIp: string): PeerPath {
    const caps = this.capabilities();
    const ip = parseIPv4(peerIp);
    if (ip === undefined) return 'none';
    if (this.#nodeSubnet?.contains(ip)) return 'same-subnet';
    if (caps.router && caps.routes !== 'unavailable' && this.#routerSubnets.some((c) => c.contains(ip)))
      return 'cloud-router';
    return 'none';
  }

  // ------------------------------------------------------------------------------- address pairs
  #pairKey(portId: string, cidr: string, node: string): string {
    return `neutron/pairs/${portId}/${cidrKey(cidr)}/${node}`;
  }

  async ensurePodSubnetAllowed(podCidr: string): Promise<EnsureResult> {
    const caps = this.capabilities();
    const cidr = strictCidr(podCidr, 'pod subnet');
    if (caps.antiSpoofing === 'not-needed') return 'not-needed';
    if (caps.antiSpoofing === 'unavailable')
      throw new CloudExtensionMissing('allowed-address-pairs', "let the node's port carry pod addresses");
    const portId = caps.node.portId;
    return this.#mutex.run(`port:${portId}`, async () => {
      const key = this.#pairKey(portId, cidr, this.#o.node);
      const owned = (await this.#store.list(key)).has(key);
      let recorded = owned;
      for (let attempt = 1; attempt <= this.#attempts(); attempt++) {
        const port = await this.#client.getPort(portId);
        if (port.port_security_enabled === false) {
          caps.antiSpoofing = 'not-needed';
          if (recorded && !owned) await this.#store.delete(key);
          return 'not-needed';
        }
        const pairs = port.allowed_address_pairs ?? [];
        const mac = port.mac_address;
        const exact = pairs.some((p) => samePair(p, cidr, mac));
        if (exact) return owned ? 'present' : 'external';
        const covering = pairs.find((p) => (p.mac_address ?? mac) === mac && covers(p.ip_address, cidr));
        if (covering) {
          if (recorded) await this.#store.delete(key);
          this.#log.info(
            { port: portId, cidr, by: covering.ip_address },
            'pod subnet already covered by an address pair weft does not own',
          );
          return 'covered';
        }
        if (!recorded) {
          await this.#store.put(key, JSON.stringify(this.#pairRecord(portId, cidr, mac)));
          recorded = true;
        }
        try {
          await this.#client.setAllowedAddressPairs(
            portId,
            [...pairs, { ip_address: cidr, mac_address: mac }],
            caps.revisionGuard ? port.revision_number : undefined,
          );
          this.#log.info({ port: portId, cidr, attempt }, 'allowed address pair added');
          return 'added';
        } catch (e) {
          if (isType(e, 'RevisionNumberConstraintFailed')) {
            await backoff(attempt);
            continue;
          }
          if (!owned) await this.#store.delete(key);
          if (isType(e, 'AllowedAddressPairExhausted')) {
            throw new AllowedAddressPairExhausted(
              portId,
              pairs.length,
              (e as NeutronApiError).neutronMessage,
              e,
            );
          }
          if (isType(e, 'AddressPairAndPortSecurityRequired')) {
            const again = await this.#client.getPort(portId);
            if (again.port_security_enabled === false) {
              caps.antiSpoofing = 'not-needed';
              return 'not-needed';
            }
            throw new AddressPairAndPortSecurityRequired(portId, (e as NeutronApiError).neutronMessage, e);
          }
          if (
            e instanceof NeutronApiError &&
            /Unrecognized attribute.*allowed_address_pairs/.test(e.neutronMessage)
          ) {
            throw new CloudExtensionMissing(
              'allowed-address-pairs',
              "let the node's port carry pod addresses",
            );
          }
          throw e;
        }
      }
      throw new CloudUpdateConflict(`port ${portId}`, this.#attempts());
    });
  }

  async removePodSubnetAllowed(podCidr: string): Promise<void> {
    const caps = this.capabilities();
    await this.#removePairAs(this.#o.node, caps.node.portId, strictCidr(podCidr, 'pod subnet'));
  }

  async #removePairAs(node: string, portId: string, cidr: string): Promise<void> {
    await this.#mutex.run(`port:${portId}`, async () => {
      const key = this.#pairKey(portId, cidr, node);
      const rec = (await this.#store.list(key)).get(key);
      if (rec === undefined) return; // not ours: never touch it
      const mac = (parseJson(rec) as Partial<PairRecord> | undefined)?.macAddress;
      for (let attempt = 1; attempt <= this.#attempts(); attempt++) {
        let port: Port;
        try {
          port = await this.#client.getPort(portId);
        } catch (e) {
          if (isType(e, 'PortNotFound')) break; // the port (and its pairs) are gone
          throw e;
        }
        const pairs = port.allowed_address_pairs ?? [];
        const keep = pairs.filter((p) => !samePair(p, cidr, mac ?? port.mac_address, port.mac_address));
        if (keep.length === pairs.length) break;
        try {
          await this.#client.setAllowedAddressPairs(
            portId,
            keep,
            this.#caps?.revisionGuard ? port.revision_number : undefined,
          );
          this.#log.info({ port: portId, cidr, node, attempt }, 'allowed address pair removed');
          break;
        } catch (e) {
          if (isType(e, 'RevisionNumberConstraintFailed')) {
            await backoff(attempt);
            if (attempt === this.#attempts()) throw new CloudUpdateConflict(`port ${portId}`, attempt);
            continue;
          }
          throw e;
        }
      }
      await this.#store.delete(key);
    });
  }

  #pairRecord(portId: string, ipAddress: string, macAddress: string): PairRecord {
    const { cluster, node } = this.#o;
    return { cluster, node, portId, ipAddress, macAddress, createdAt: new Date().toISOString() };
  }

  // ------------------------------------------------------------------------------- routes
  #routePrefix(routerId: string): string {
    return `neutron/routes/${routerId}/`;
  }
  #routeKey(routerId: string, r: Route, node: string): string {
    return `${this.#routePrefix(routerId)}${cidrKey(r.destination)}/${r.nexthop}/${node}`;
  }

  /** Owners (in this cluster) of each route on the router, by routeId(). */
  async #owners(routerId: string): Promise<Map<string, RouteRecord[]>> {
    const out = new Map<string, RouteRecord[]>();
    for (const v of (await this.#store.list(this.#routePrefix(routerId))).values()) {
      const r = parseJson(v) as RouteRecord | undefined;
      if (!r || r.cluster !== this.#o.cluster) continue;
      const id = routeId(r);
      out.set(id, [...(out.get(id) ?? []), r]);
    }
    return out;
  }

  #routerFor(what: string): CloudRouterInfo {
    const caps = this.capabilities();
    if (!caps.router) {
      throw new NoCloudRouter(
        `cannot ${what}: no Neutron router has an interface on the node's subnet ${caps.node.subnetCidr}`,
        'attach the subnet to a router (or set routerId), or use host-gw/vxlan between subnets',
      );
    }
    if (caps.routes === 'unavailable') throw new CloudExtensionMissing('extraroute', what);
    return caps.router;
  }

  #validateRoutes(routes: readonly CloudRoute[]): Route[] {
    const seen = new Map<string, Route>();
    for (const r of routes) {
      const destination = strictCidr(r.destination, 'route destination');
      const hop = parseIPv4(r.nexthop);
      if (hop === undefined) {
        throw new CloudProviderError(
          'InvalidRoute',
          `route next hop "${r.nexthop}" is not an IPv4 address`,
          "use the node's IPv4 address",
        );
      }
      if (!this.#routerSubnets.some((c) => c.contains(hop))) {
        throw new NoCloudRouter(
          `next hop ${r.nexthop} of ${destination} is not on a subnet attached to router ${this.#caps?.router?.id}`,
          "only nodes on subnets of this node's router can be reached through it: encapsulate to the others",
        );
      }
      const route = { destination, nexthop: r.nexthop };
      seen.set(routeId(route), route);
    }
    return [...seen.values()];
  }

  async ensureRoutes(routes: readonly CloudRoute[]): Promise<EnsureResult[]> {
    const router = this.#routerFor('add pod subnet routes');
    const wanted = this.#validateRoutes(routes);
    const results = new Map<string, EnsureResult>();
    await this.#mutex.run(`router:${router.id}`, async () => {
      // Router first, records second: an adder writes its record before adding, so a weft route seen
      // in the router always has its record by the time we read them.
      let current = await this.#client.getRouter(router.id);
      const owners = await this.#owners(router.id);
      let have = new Set(current.routes.map(routeId));
      if (wanted.some((r) => have.has(routeId(r)) && !owners.has(routeId(r)))) {
        // Present without a record: someone else's, unless a weft owner removed it meanwhile (it removes
        // the route before its record). Look again so that such a route is added, not left missing.
        current = await this.#client.getRouter(router.id);
        have = new Set(current.routes.map(routeId));
      }
      const toAdd: Route[] = [];
      const newRecords: string[] = [];
      for (const r of wanted) {
        const id = routeId(r);
        const own = owners.get(id) ?? [];
        const mine = own.some((o) => o.node === this.#o.node);
        if (have.has(id) && own.length === 0) {
          results.set(id, 'external');
          continue;
        }
        if (!mine) {
          const key = this.#routeKey(router.id, r, this.#o.node);
          await this.#store.put(key, JSON.stringify(this.#routeRecord(router.id, r)));
          newRecords.push(key);
        }
        if (have.has(id)) results.set(id, 'present');
        else {
          toAdd.push(r);
          results.set(id, 'added');
        }
      }
      if (toAdd.length) {
        try {
          await this.#addRoutes(router.id, toAdd);
          this.#log.info({ router: router.id, routes: toAdd }, 'router routes added');
        } catch (e) {
          // Nothing was added (atomic add and guarded replace are all-or-nothing): drop the records.
          for (const k of newRecords) await this.#store.delete(k);
          if (isType(e, 'RoutesExhausted')) {
            const now = await this.#client.getRouter(router.id).catch(() => current);
            throw new RoutesExhausted(
              router.id,
              now.routes.length,
              toAdd.length,
              (e as NeutronApiError).neutronMessage,
              e,
            );
          }
          throw e;
        }
      }
    });
    return routes.map((r) =>
      results.get(routeId({ destination: strictCidr(r.destination, 'route'), nexthop: r.nexthop }))!,
    );
  }

  async removeRoutes(routes: readonly CloudRoute[]): Promise<void> {
    const router = this.#routerFor('remove pod subnet routes');
    await this.#removeRoutesAs(this.#o.node, router.id, this.#validateRoutes(routes));
  }

  async #removeRoutesAs(node: string, routerId: string, routes: Route[]): Promise<void> {
    if (routes.length === 0) return;
    await this.#mutex.run(`router:${routerId}`, async () => {
      const owners = await this.#owners(routerId);
      const mineOnly: Route[] = [];
      const mine: Route[] = [];
      for (const r of routes) {
        const own = owners.get(routeId(r)) ?? [];
        if (!own.some((o) => o.node === node)) continue; // not owned by node: never touch it
        mine.push(r);
        if (own.every((o) => o.node === node)) mineOnly.push(r);
      }
      if (mineOnly.length) {
        await this.#removeRoutesFromRouter(routerId, mineOnly);
        this.#log.info({ router: routerId, routes: mineOnly, node }, 'router routes removed');
      }
      for (const r of mine) await this.#store.delete(this.#routeKey(routerId, r, node));
      // Another owner may have ensured one of them while we removed it (it saw it present, so did not add).
      const after = await this.#owners(routerId);
      const readd = mineOnly.filter((r) => (after.get(routeId(r)) ?? []).length > 0);
      if (readd.length) {
        this.#log.info(
          { router: routerId, routes: readd },
          're-adding routes another owner claimed meanwhile',
        );
        await this.#addRoutes(routerId, readd);
      }
    });
  }

  async #addRoutes(routerId: string, routes: Route[]): Promise<void> {
    if (this.capabilities().routes === 'atomic') {
      await this.#client.addExtraRoutes(routerId, routes);
      return;
    }
    await this.#replaceRoutes(routerId, (cur) => {
      const have = new Set(cur.map(routeId));
      return [...cur, ...routes.filter((r) => !have.has(routeId(r)))];
    });
  }

  async #removeRoutesFromRouter(routerId: string, routes: Route[]): Promise<void> {
    if (this.capabilities().routes === 'atomic') {
      await this.#client.removeExtraRoutes(routerId, routes);
      return;
    }
    const drop = new Set(routes.map(routeId));
    await this.#replaceRoutes(routerId, (cur) => cur.filter((r) => !drop.has(routeId(r))));
  }

  /** Without extraroute-atomic: full-list replace under the router's cluster lock, guarded by revision. */
  async #replaceRoutes(routerId: string, change: (current: Route[]) => Route[]): Promise<void> {
    const guard = this.capabilities().revisionGuard;
    await this.#store.withLock(`neutron-router-${routerId}`, async () => {
      for (let attempt = 1; attempt <= this.#attempts(); attempt++) {
        const router: Router = await this.#client.getRouter(routerId);
        const next = change(router.routes);
        if (sameRouteSet(next, router.routes)) return;
        try {
          await this.#client.setRoutes(routerId, next, guard ? router.revision_number : undefined);
          return;
        } catch (e) {
          if (!isType(e, 'RevisionNumberConstraintFailed')) throw e;
          this.#log.debug({ router: routerId, attempt }, 'router changed meanwhile (412): retrying');
          await backoff(attempt);
        }
      }
      throw new CloudUpdateConflict(`router ${routerId}`, this.#attempts());
    });
  }

  #routeRecord(routerId: string, r: Route): RouteRecord {
    const { cluster, node } = this.#o;
    return {
      cluster,
      node,
      routerId,
      destination: r.destination,
      nexthop: r.nexthop,
      createdAt: new Date().toISOString(),
    };
  }

  // ------------------------------------------------------------------------------- ownership
  async #records(node: string): Promise<{ routes: RouteRecord[]; pairs: PairRecord[] }> {
    const routes: RouteRecord[] = [];
    const pairs: PairRecord[] = [];
    for (const [k, v] of await this.#store.list('neutron/')) {
      const r = parseJson(v) as (RouteRecord & PairRecord) | undefined;
      if (!r || r.cluster !== this.#o.cluster || r.node !== node) continue;
      if (k.startsWith('neutron/routes/')) routes.push(r);
      else if (k.startsWith('neutron/pairs/')) pairs.push(r);
    }
    return { routes, pairs };
  }

  async listOwned(): Promise<OwnedObjects> {
    const recs = await this.#records(this.#o.node);
    const routers = new Map<string, Set<string>>();
    for (const id of new Set(recs.routes.map((r) => r.routerId))) {
      try {
        routers.set(id, new Set((await this.#client.getRouter(id)).routes.map(routeId)));
      } catch (e) {
        if (!isType(e, 'RouterNotFound')) throw e;
        routers.set(id, new Set());
      }
    }
    const ports = new Map<string, Port | undefined>();
    for (const id of new Set(recs.pairs.map((p) => p.portId))) {
      try {
        ports.set(id, await this.#client.getPort(id));
      } catch (e) {
        if (!isType(e, 'PortNotFound')) throw e;
        ports.set(id, undefined);
      }
    }
    const routes: OwnedRoute[] = recs.routes.map((r) => ({
      destination: r.destination,
      nexthop: r.nexthop,
      routerId: r.routerId,
      node: r.node,
      cluster: r.cluster,
      present: routers.get(r.routerId)?.has(routeId(r)) ?? false,
    }));
    const pairs: OwnedPair[] = recs.pairs.map((p) => {
      const port = ports.get(p.portId);
      return {
        portId: p.portId,
        ipAddress: p.ipAddress,
        node: p.node,
        cluster: p.cluster,
        present:
          !!port &&
          (port.allowed_address_pairs ?? []).some((x) =>
            samePair(x, p.ipAddress, p.macAddress, port.mac_address),
          ),
      };
    });
    return { routes, pairs };
  }

  async releaseAll(): Promise<void> {
    await this.reapNode(this.#o.node);
  }

  async reapNode(node: string): Promise<void> {
    this.capabilities();
    const recs = await this.#records(node);
    const byRouter = new Map<string, Route[]>();
    for (const r of recs.routes) byRouter.set(r.routerId, [...(byRouter.get(r.routerId) ?? []), r]);
    for (const [routerId, routes] of byRouter) {
      try {
        await this.#removeRoutesAs(
          node,
          routerId,
          routes.map((r) => ({ destination: r.destination, nexthop: r.nexthop })),
        );
      } catch (e) {
        if (!isType(e, 'RouterNotFound')) throw e;
        for (const r of routes) await this.#store.delete(this.#routeKey(routerId, r, node));
      }
    }
    for (const p of recs.pairs) await this.#removePairAs(node, p.portId, p.ipAddress);
    this.#log.info(
      { node, routes: recs.routes.length, pairs: recs.pairs.length },
      'released cloud objects of node',
    );
  }

  #attempts(): number {
    return this.#o.maxAttempts ?? 16;
  }
}

// ---------------------------------------------------------------------------------- owners

/** What one node of a cluster owns according to the records (no cloud call). */
export interface RecordedOwnership {
  routes: CloudRoute[];
  /** Pod subnets recorded as address pairs, with the port they are on. */
  pairs: { ipAddress: string; portId: string }[];
}

/**
 * Every node of `cluster` that has an ownership record, with what it owns: a coordinator reaps the
 * nodes it no longer sees among these, and nothing else.
 */
export async function recordedOwners(
  store: OwnershipStore,
  cluster: string,
): Promise<Map<string, RecordedOwnership>> {
  const out = new Map<string, RecordedOwnership>();
  for (const [k, v] of await store.list('neutron/')) {
    const r = parseJson(v) as Partial<RouteRecord & PairRecord> | undefined;
    if (!r || r.cluster !== cluster || typeof r.node !== 'string') continue;
    const o = out.get(r.node) ?? { routes: [], pairs: [] };
    if (k.startsWith('neutron/routes/') && r.destination && r.nexthop)
      o.routes.push({ destination: r.destination, nexthop: r.nexthop });
    else if (k.startsWith('neutron/pairs/') && r.ipAddress && r.portId)
      o.pairs.push({ ipAddress: r.ipAddress, portId: r.portId });
    out.set(r.node, o);
  }
  return out;
}

// ---------------------------------------------------------------------------------- helpers

function strictCidr(text: string, what: string): string {
  const c = Cidr.parse(text, true);
  if (!c) {
    throw new CloudProviderError(
      'InvalidCidr',
      `${what} "${text}" is not an IPv4 CIDR with zero host bits`,
      'pass e.g. 10.244.3.0/24',
    );
  }
  return c.toString();
}

function cidrKey(cidr: string): string {
  return cidr.replace('/', '-');
}

/** A route's identity: destination (normalised) and next hop. */
function routeId(r: Route): string {
  const c = Cidr.parse(r.destination);
  return `${c ? c.toString() : r.destination} via ${r.nexthop}`;
}

function sameRouteSet(a: Route[], b: Route[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a.map(routeId));
  return b.every((r) => s.has(routeId(r)));
}

/** Pair ip_address as a CIDR ("10.0.0.5" means /32). */
function pairCidr(ip: string): Cidr | undefined {
  return Cidr.parse(ip.includes('/') ? ip : `${ip}/32`);
}

function samePair(p: AddressPair, cidr: string, mac: string, portMac?: string): boolean {
  const a = pairCidr(p.ip_address);
  const b = Cidr.parse(cidr);
  return !!a && !!b && a.equals(b) && (p.mac_address ?? portMac ?? mac).toLowerCase() === mac.toLowerCase();
}

function covers(pairIp: string, cidr: string): boolean {
  const a = pairCidr(pairIp);
  const b = Cidr.parse(cidr);
  return !!a && !!b && a.containsCidr(b) && !a.equals(b);
}

function isType(e: unknown, type: string): e is NeutronApiError {
  return e instanceof NeutronApiError && e.type === type;
}

function parseJson(v: string): unknown {
  try {
    return JSON.parse(v);
  } catch {
    return undefined;
  }
}

async function backoff(attempt: number): Promise<void> {
  const base = Math.min(20 * 2 ** attempt, 1000);
  await sleep(base / 2 + Math.random() * base);
}

/** Serialises async work per key inside this process. */
class KeyedMutex {
  readonly #tails = new Map<string, Promise<unknown>>();
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const tail = p.catch(() => undefined);
    this.#tails.set(key, tail);
    try {
      return await p;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

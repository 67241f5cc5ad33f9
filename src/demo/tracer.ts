import { readState } from '../lab/lab.js';
import { labServe } from '../lab/serve.js';
import { serviceAdd } from '../lab/services.js';
import { labTrace } from '../trace/run.js';
import type { TraceResult } from '../trace/types.js';

/**
 * The demo's seam to `weft trace` and the lab's services (src/trace, src/lab/services.ts): a ClusterIP
 * service in front of one pod, as kube-proxy's nftables mode programs it on every node, with a
 * responder in that pod, and one traced probe followed through every namespace of the lab (the
 * hypervisors' too on Neutron). The steps (trace-step.ts) see only this interface.
 */
export interface DemoService {
  name: string;
  vip: string;
  port: number;
  /** The pod and port the service's DNAT sends to. */
  endpoint: string;
  targetPort: number;
}

export interface DemoTracer {
  /** A ClusterIP service `name`:`port` in front of `endpoint` (a pod), and a responder in that pod. */
  service(lab: string, name: string, endpoint: string, port: number): Promise<DemoService>;
  /** One probe from `from` (a pod) to `to` (a pod: ICMP; a service: TCP to its port), hop by hop. */
  trace(lab: string, from: string, to: string): Promise<TraceResult>;
}

/** The port the endpoint's responder listens on (the service's targetPort, as a Deployment's would). */
const TARGET_PORT = 8080;

export const labTracer: DemoTracer = {
  async service(lab, name, endpoint, port) {
    const s = await readState(lab);
    await labServe(s, endpoint, { port: TARGET_PORT, proto: 'tcp' });
    const svc = await serviceAdd(s, { name, port, targetPort: TARGET_PORT, to: [endpoint] });
    return { name: svc.name, vip: svc.vip, port: svc.port, endpoint, targetPort: svc.targetPort };
  },
  trace: (lab, from, to) => labTrace(lab, from, to),
};

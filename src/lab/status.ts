import { join } from 'node:path';
import { agentGet } from '../agent/client.js';
import { readSubnetEnv } from '../config/subnet-env.js';
import { agentFiles, agentLiveness, type AgentLiveness } from './agents.js';
import { readServices, serviceStatus, type ServiceStatus } from './services.js';
import { readState } from './state.js';

/** What `weft lab status` shows: every node with its agent's liveness and readiness, every pod. */
export interface LabStatus {
  name: string;
  underlay: string;
  backend: string;
  etcd: { netns: string | null; endpoints: string[] };
  nodes: {
    name: string;
    netns: string;
    publicIP: string;
    subnet: string | null;
    agentPid: number;
    /** Whether the agent process runs, and how it ended if it does not. */
    agent: AgentLiveness;
    /** The agent's own /readyz: 200. */
    ready: boolean;
    /** What /readyz said ("ready", "not ready: …"), or why it could not be asked. */
    readiness: string;
  }[];
  pods: { name: string; node: string; netns: string; ip: string }[];
  external: { netns: string; ip: string };
  gateway: { netns: string };
  services: ServiceStatus[];
}

export async function labStatus(name: string): Promise<LabStatus> {
  const s = await readState(name);
  const nodes = await Promise.all(
    s.nodes.map(async (n) => {
      const env = await readSubnetEnv(join(n.dir, 'subnet.env')).catch(() => undefined);
      // Without the hint: the table shows why, the agent column shows whether it runs.
      const r = await agentGet(agentFiles(n.dir).socket, '/readyz').catch((e: unknown) => ({
        code: 0,
        body: e instanceof Error ? e.message : String(e),
      }));
      return {
        name: n.name,
        netns: n.netns,
        publicIP: n.publicIP,
        subnet: env ? env.subnet.toString() : null,
        agentPid: n.agentPid,
        agent: await agentLiveness(n),
        ready: r.code === 200,
        readiness: r.body.trim(),
      };
    }),
  );
  return {
    name: s.name,
    underlay: s.underlay,
    backend: s.backend,
    etcd: { netns: s.etcd.netns, endpoints: s.etcd.endpoints },
    nodes,
    pods: s.pods.map((p) => ({ name: p.name, node: p.node, netns: p.netns, ip: p.ip })),
    external: s.external,
    gateway: s.gateway,
    services: (await readServices(name)).map(serviceStatus),
  };
}

import type { MagnumMapping } from '../lab/magnum.js';
import { schemaChecker } from '../util/schema.js';

/**
 * The result of one `weft demo`: a versioned JSON document, `weft-demo/result.json` (docs/demo-result.md
 * describes every field). The bench run inside it is written beside it in full as bench-result.json
 * (`weft-bench/v1`); this document keeps the demo's table, findings and evidence.
 */
export const DEMO_SCHEMA_ID = 'weft-demo/v1';

export type StepId = 'provision' | 'trace' | 'quantify' | 'limits' | 'mitigate';
/** `not-applicable`: a step the underlay cannot show (the mitigation needs Neutron). */
export type StepStatus = 'passed' | 'failed' | 'not-applicable';

export interface StepResult {
  id: StepId;
  title: string;
  status: StepStatus;
  seconds: number;
  /** One line: what the step showed. */
  summary: string;
  error?: string;
}

/** One piece of evidence: what was asked (a command, an API call, an agent's status) and what came back. */
export interface Evidence {
  kind: 'command' | 'neutron-api' | 'agent-status' | 'counter' | 'trace' | 'measurement';
  /** What was run or asked, exactly. */
  what: string;
  /** What it answered (trimmed). */
  output: string;
}

export interface ProvisionResult {
  template: string;
  templateName?: string;
  mapping: MagnumMapping[];
  underlay: string;
  backend: string;
  network: string;
  nodes: { name: string; publicIP: string; underlaySubnet: string; hypervisor?: string; podSubnet: string }[];
  pods: { name: string; node: string; ip: string }[];
  /** Seconds `lab up` took, by phase (underlay, etcd, agents, reachable, pods, total). */
  timings: Record<string, number>;
  /** Ordered pod pairs on different nodes that answered one ping right after `lab up`. */
  podPairs: { total: number; answered: number };
}

export interface TraceHopView {
  direction: 'request' | 'reply';
  host: string;
  netns: string;
  device: string;
  event: string;
  /** Encapsulations around the probe, outermost first ("VXLAN VNI 1 (weft) 10.0.1.11→10.0.1.13"). */
  layers: string[];
  /** Who put each layer there ("neutron", "weft"), in the same order. */
  owners: string[];
  nat?: string;
  drop?: string;
  mtu?: number;
  /** Microseconds since the probe left the sender, and since the previous hop. */
  tUs: number;
  dtUs: number;
}

/** One thing the trace must show (the DNAT hop, two encapsulations, the MTU), and whether it did. */
export interface TraceCheck {
  what: string;
  ok: boolean;
}

export interface TraceStepResult {
  /** The backend the lab ran when traced. */
  backend: string;
  /** traced: delivered and every check shown; not-applicable: the underlay cannot show it. */
  status: 'traced' | 'failed' | 'not-applicable';
  reason?: string;
  from?: string;
  to?: string;
  service?: { name: string; vip: string; port: number };
  verdict?: string;
  why?: string;
  rttUs?: number;
  pathMtu?: number;
  mtuNote?: string;
  /** Time per part of the path (pods, nodes, the fabric or Neutron's hypervisors). */
  segments?: { segment: string; us: number }[];
  hops?: TraceHopView[];
  checks?: TraceCheck[];
}

export type RowId = 'native' | 'host-gw+pairs' | 'host-gw' | 'vxlan' | 'udp' | 'udp-batch1' | 'neutron';

export interface QuantifyRow {
  id: RowId;
  label: string;
  /** The bench path id the row comes from ("native", "cross-node/vxlan"). */
  pathId: string;
  /** measured: figures below; unreachable: the path drops (reason); not-applicable: not on this underlay. */
  status: 'measured' | 'unreachable' | 'failed' | 'not-applicable';
  reason?: string;
  gbps?: number;
  gbps4?: number;
  /** 1 stream, of native (node to node) in the same run. */
  ratio?: number;
  rttP50Us?: number;
  /** The pod's MTU on the path (the node's for native). */
  mtu?: number;
  talk?: { gbps: number; ratio: number; what: string };
}

export interface QuantifyResult {
  rows: QuantifyRow[];
  /** The full bench result, beside result.json. */
  benchFile: string;
  seconds: number;
  repetitions: number;
  /** How "host-gw with the fix" was made. */
  fixMethod: string;
  talkSource: string;
}

export type LimitId = 'port-security' | 'cross-subnet' | 'mtu' | 'external';

export interface LimitResult {
  id: LimitId;
  claim: string;
  backend: string;
  status: 'shown' | 'not-shown' | 'not-applicable';
  /** One line: what was found. */
  finding: string;
  evidence: Evidence[];
}

export interface MitigationResult {
  from: string;
  to: string;
  switchSeconds: number;
  /** Pods kept: the same namespaces, addresses and interfaces before and after. */
  podsKept: boolean;
  mtu: { before: number; after: number };
  /** DF pings from a pod, IP packet sizes: the largest that passes, the smallest that fails. */
  df: { passes: number; passed: boolean; fails: number; failed: boolean };
  throughput: { vxlanGbps?: number; neutronGbps?: number; nativeGbps?: number; liveGbps?: number };
  external: { reached: boolean; seenSource?: string; pod: string };
  podPairs: { total: number; answered: number };
  asked?: {
    ports: { node: string; portId: string; portSecurity: boolean; pairs: string[] }[];
    routes: { destination: string; nexthop: string }[];
  };
  evidence: Evidence[];
}

export interface ClaimResult {
  id: string;
  claim: string;
  source: string;
  measured: string;
  verdict: 'confirmed' | 'differs' | 'not-measured';
}

export interface DemoResult {
  schema: typeof DEMO_SCHEMA_ID;
  tool: { name: 'weft'; version: string };
  startedAt: string;
  finishedAt: string;
  seconds: number;
  underlay: string;
  lab: string;
  settings: { seconds: number; repetitions: number; keep: boolean };
  /** Every step passed or is not applicable (nothing failed). */
  ok: boolean;
  steps: StepResult[];
  provision?: ProvisionResult;
  traces: TraceStepResult[];
  quantify?: QuantifyResult;
  limits: LimitResult[];
  mitigation?: MitigationResult;
  claims: ClaimResult[];
}

// ------------------------------------------------------------------------------------------- schema
const str = { type: 'string' } as const;
const num = { type: 'number' } as const;
const int = { type: 'integer' } as const;
const bool = { type: 'boolean' } as const;
const strs = { type: 'array', items: str } as const;
const obj = (required: string[], properties: Record<string, unknown>) => ({
  type: 'object',
  required,
  properties,
});
const evidence = obj(['kind', 'what', 'output'], {
  kind: { enum: ['command', 'neutron-api', 'agent-status', 'counter', 'trace', 'measurement'] },
  what: str,
  output: str,
});
const evidenceList = { type: 'array', items: evidence } as const;
const pairCount = obj(['total', 'answered'], { total: int, answered: int });

/** JSON Schema of a DemoResult (`weft demo --schema` prints it). */
export const DEMO_JSON_SCHEMA = {
  $id: 'https://weft.dev/schemas/demo-result-v1.json',
  title: 'weft demo result',
  ...obj(
    [
      'schema',
      'tool',
      'startedAt',
      'finishedAt',
      'seconds',
      'underlay',
      'lab',
      'settings',
      'ok',
      'steps',
      'traces',
      'limits',
      'claims',
    ],
    {
      schema: { const: DEMO_SCHEMA_ID },
      tool: obj(['name', 'version'], { name: { const: 'weft' }, version: str }),
      startedAt: str,
      finishedAt: str,
      seconds: num,
      underlay: { enum: ['neutron', 'flat'] },
      lab: str,
      settings: obj(['seconds', 'repetitions', 'keep'], { seconds: num, repetitions: int, keep: bool }),
      ok: bool,
      steps: {
        type: 'array',
        items: obj(['id', 'title', 'status', 'seconds', 'summary'], {
          id: { enum: ['provision', 'trace', 'quantify', 'limits', 'mitigate'] },
          title: str,
          status: { enum: ['passed', 'failed', 'not-applicable'] },
          seconds: num,
          summary: str,
          error: str,
        }),
      },
      provision: obj(
        ['template', 'mapping', 'underlay', 'backend', 'network', 'nodes', 'pods', 'timings', 'podPairs'],
        {
          template: str,
          templateName: str,
          mapping: {
            type: 'array',
            items: obj(['field', 'value', 'became'], { field: str, value: str, became: str }),
          },
          underlay: str,
          backend: str,
          network: str,
          nodes: {
            type: 'array',
            items: obj(['name', 'publicIP', 'underlaySubnet', 'podSubnet'], {
              name: str,
              publicIP: str,
              underlaySubnet: str,
              hypervisor: str,
              podSubnet: str,
            }),
          },
          pods: { type: 'array', items: obj(['name', 'node', 'ip'], { name: str, node: str, ip: str }) },
          timings: { type: 'object', additionalProperties: num },
          podPairs: pairCount,
        },
      ),
      traces: {
        type: 'array',
        items: obj(['backend', 'status'], {
          backend: str,
          status: { enum: ['traced', 'failed', 'not-applicable'] },
          reason: str,
          from: str,
          to: str,
          service: obj(['name', 'vip', 'port'], { name: str, vip: str, port: int }),
          verdict: str,
          why: str,
          rttUs: num,
          pathMtu: int,
          mtuNote: str,
          segments: { type: 'array', items: obj(['segment', 'us'], { segment: str, us: num }) },
          hops: {
            type: 'array',
            items: obj(['direction', 'host', 'netns', 'device', 'event', 'layers', 'owners', 'tUs', 'dtUs'], {
              direction: { enum: ['request', 'reply'] },
              host: str,
              netns: str,
              device: str,
              event: str,
              layers: strs,
              owners: strs,
              nat: str,
              drop: str,
              mtu: int,
              tUs: num,
              dtUs: num,
            }),
          },
          checks: { type: 'array', items: obj(['what', 'ok'], { what: str, ok: bool }) },
        }),
      },
      quantify: obj(['rows', 'benchFile', 'seconds', 'repetitions', 'fixMethod', 'talkSource'], {
        rows: {
          type: 'array',
          items: obj(['id', 'label', 'pathId', 'status'], {
            id: { enum: ['native', 'host-gw+pairs', 'host-gw', 'vxlan', 'udp', 'udp-batch1', 'neutron'] },
            label: str,
            pathId: str,
            status: { enum: ['measured', 'unreachable', 'failed', 'not-applicable'] },
            reason: str,
            gbps: num,
            gbps4: num,
            ratio: num,
            rttP50Us: num,
            mtu: int,
            talk: obj(['gbps', 'ratio', 'what'], { gbps: num, ratio: num, what: str }),
          }),
        },
        benchFile: str,
        seconds: num,
        repetitions: int,
        fixMethod: str,
        talkSource: str,
      }),
      limits: {
        type: 'array',
        items: obj(['id', 'claim', 'backend', 'status', 'finding', 'evidence'], {
          id: { enum: ['port-security', 'cross-subnet', 'mtu', 'external'] },
          claim: str,
          backend: str,
          status: { enum: ['shown', 'not-shown', 'not-applicable'] },
          finding: str,
          evidence: evidenceList,
        }),
      },
      mitigation: obj(
        [
          'from',
          'to',
          'switchSeconds',
          'podsKept',
          'mtu',
          'df',
          'throughput',
          'external',
          'podPairs',
          'evidence',
        ],
        {
          from: str,
          to: str,
          switchSeconds: num,
          podsKept: bool,
          mtu: obj(['before', 'after'], { before: int, after: int }),
          df: obj(['passes', 'passed', 'fails', 'failed'], {
            passes: int,
            passed: bool,
            fails: int,
            failed: bool,
          }),
          throughput: obj([], { vxlanGbps: num, neutronGbps: num, nativeGbps: num, liveGbps: num }),
          external: obj(['reached', 'pod'], { reached: bool, seenSource: str, pod: str }),
          podPairs: pairCount,
          asked: obj(['ports', 'routes'], {
            ports: {
              type: 'array',
              items: obj(['node', 'portId', 'portSecurity', 'pairs'], {
                node: str,
                portId: str,
                portSecurity: bool,
                pairs: strs,
              }),
            },
            routes: {
              type: 'array',
              items: obj(['destination', 'nexthop'], { destination: str, nexthop: str }),
            },
          }),
          evidence: evidenceList,
        },
      ),
      claims: {
        type: 'array',
        items: obj(['id', 'claim', 'source', 'measured', 'verdict'], {
          id: str,
          claim: str,
          source: str,
          measured: str,
          verdict: { enum: ['confirmed', 'differs', 'not-measured'] },
        }),
      },
    },
  ),
} as const;

/** The schema violations of a document, as "path: message" lines (empty when it is valid). */
export const demoSchemaErrors = schemaChecker(DEMO_JSON_SCHEMA);

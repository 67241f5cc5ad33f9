import { WeftError } from '../util/errors.js';
import { schemaChecker } from '../util/schema.js';

/**
 * The result of one `weft bench` run: a versioned JSON document (docs/bench-result.md describes every
 * field). Consumers check `schema` first; a change that removes or renames a field bumps the version.
 */
export const RESULT_SCHEMA_ID = 'weft-bench/v1';

/** A figure measured once per repetition: the median is what tables and ratios use. */
export interface Stat {
  median: number;
  min: number;
  max: number;
  /** One value per repetition, in run order. */
  values: number[];
}

export interface Endpoint {
  /** Lab name of the node or pod ("n1", "n1p2"). */
  name: string;
  netns: string;
  ip: string;
}

export type HopKind = 'pod' | 'veth' | 'bridge' | 'overlay' | 'underlay';

/** One interface a packet of the path crosses, in order from sender to receiver. */
export interface Hop {
  /** Node or pod the interface lives in. */
  host: string;
  netns: string;
  device: string;
  kind: HopKind;
  mtu: number;
}

export interface Throughput {
  /** Receiver-side goodput, warm-up excluded. */
  gbps: Stat;
  /** TCP retransmits counted by the sender over the measured interval. */
  retransmits: Stat;
  /** Busy CPU of the whole machine (both ends, softirq included) in cores, per Gbit/s moved. */
  cpuCoresPerGbps: Stat;
  /** iperf3's own figures: the sending and the receiving process, % of one core. */
  senderCpuPercent: Stat;
  receiverCpuPercent: Stat;
}

export interface Latency {
  /** Round trip (sockperf --full-rtt), microseconds. */
  p50Us: Stat;
  p90Us: Stat;
  p99Us: Stat;
  p999Us: Stat;
  meanUs: Stat;
}

/** `reference`: the hand-built paths of `--reference` (no agent, no nftables), for comparison. */
export type PathKind = 'native' | 'same-node' | 'cross-node' | 'reference';

export interface PathResult {
  /** Stable across runs: "native", "same-node", "cross-node/vxlan", "reference/routed", … (what --compare matches on). */
  id: string;
  label: string;
  kind: PathKind;
  /** The backend programmed while the path was measured; null for the underlay itself. */
  backend: string | null;
  /** Present when the BPF fast path was on while measuring (added in v1, issue 15). */
  fastPath?: 'bpf';
  from: Endpoint;
  to: Endpoint;
  hops: Hop[];
  status: 'ok' | 'unreachable' | 'failed';
  /** Why the path was not measured (or not completely), in words. */
  reason?: string;
  tcp1?: Throughput;
  tcp4?: Throughput;
  latency?: Latency;
  /** Medians divided by the native path's medians from the same run (null when either is missing). */
  ratios: {
    tcp1: number | null;
    tcp4: number | null;
    latencyP50: number | null;
    cpuPerGbps: number | null;
  };
}

export interface BenchResult {
  schema: typeof RESULT_SCHEMA_ID;
  tool: { name: 'weft'; version: string };
  startedAt: string;
  finishedAt: string;
  lab: { name: string; underlay: string; nodes: number; backendBefore: string };
  settings: {
    seconds: number;
    warmupSeconds: number;
    repetitions: number;
    streams: number[];
    quick: boolean;
    /** Whether the hand-built reference paths were measured (--reference); added in v1, may be absent. */
    reference?: boolean;
    /** Whether every backend was also measured with the BPF fast path (--fast-path); may be absent. */
    fastPath?: boolean;
    throughputTool: string;
    latencyTool: string;
    rttConvention: string;
    cpuMethod: string;
  };
  environment: {
    kernel: string;
    cpuModel: string;
    cpus: number;
    memoryBytes: number;
    cpuGovernor: string;
    node: string;
    iperf3: string;
    sockperf: string;
    underlayMtu: number;
    /** ethtool -k of every interface on a measured path, keyed "host/device" (a selection of features). */
    offloads: Record<string, Record<string, string>>;
  };
  nativePathId: string;
  paths: PathResult[];
}

// ------------------------------------------------------------------------------------------- schema
const num = { type: 'number' } as const;
const stat = {
  type: 'object',
  required: ['median', 'min', 'max', 'values'],
  properties: { median: num, min: num, max: num, values: { type: 'array', items: num } },
} as const;
const endpoint = {
  type: 'object',
  required: ['name', 'netns', 'ip'],
  properties: { name: { type: 'string' }, netns: { type: 'string' }, ip: { type: 'string' } },
} as const;
const throughput = {
  type: 'object',
  required: ['gbps', 'retransmits', 'cpuCoresPerGbps', 'senderCpuPercent', 'receiverCpuPercent'],
  properties: {
    gbps: stat,
    retransmits: stat,
    cpuCoresPerGbps: stat,
    senderCpuPercent: stat,
    receiverCpuPercent: stat,
  },
} as const;
const ratio = { type: ['number', 'null'] } as const;
const strings = { type: 'object', additionalProperties: { type: 'string' } } as const;

/** JSON Schema (draft 2020-12 subset understood by Ajv) of a BenchResult; `weft bench --schema` prints it. */
export const RESULT_JSON_SCHEMA = {
  $id: 'https://weft.dev/schemas/bench-result-v1.json',
  title: 'weft bench result',
  type: 'object',
  required: [
    'schema',
    'tool',
    'startedAt',
    'finishedAt',
    'lab',
    'settings',
    'environment',
    'nativePathId',
    'paths',
  ],
  properties: {
    schema: { const: RESULT_SCHEMA_ID },
    tool: {
      type: 'object',
      required: ['name', 'version'],
      properties: { name: { const: 'weft' }, version: { type: 'string' } },
    },
    startedAt: { type: 'string' },
    finishedAt: { type: 'string' },
    lab: {
      type: 'object',
      required: ['name', 'underlay', 'nodes', 'backendBefore'],
      properties: {
        name: { type: 'string' },
        underlay: { type: 'string' },
        nodes: { type: 'integer' },
        backendBefore: { type: 'string' },
      },
    },
    settings: {
      type: 'object',
      required: [
        'seconds',
        'warmupSeconds',
        'repetitions',
        'streams',
        'quick',
        'throughputTool',
        'latencyTool',
        'rttConvention',
        'cpuMethod',
      ],
      properties: {
        seconds: num,
        warmupSeconds: num,
        repetitions: { type: 'integer', minimum: 1 },
        streams: { type: 'array', items: { type: 'integer' } },
        quick: { type: 'boolean' },
        reference: { type: 'boolean' },
        fastPath: { type: 'boolean' },
        throughputTool: { type: 'string' },
        latencyTool: { type: 'string' },
        rttConvention: { type: 'string' },
        cpuMethod: { type: 'string' },
      },
    },
    environment: {
      type: 'object',
      required: [
        'kernel',
        'cpuModel',
        'cpus',
        'memoryBytes',
        'cpuGovernor',
        'node',
        'iperf3',
        'sockperf',
        'underlayMtu',
        'offloads',
      ],
      properties: {
        kernel: { type: 'string' },
        cpuModel: { type: 'string' },
        cpus: { type: 'integer' },
        memoryBytes: num,
        cpuGovernor: { type: 'string' },
        node: { type: 'string' },
        iperf3: { type: 'string' },
        sockperf: { type: 'string' },
        underlayMtu: { type: 'integer' },
        offloads: { type: 'object', additionalProperties: strings },
      },
    },
    nativePathId: { type: 'string' },
    paths: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['id', 'label', 'kind', 'backend', 'from', 'to', 'hops', 'status', 'ratios'],
        properties: {
          id: { type: 'string' },
          label: { type: 'string' },
          kind: { enum: ['native', 'same-node', 'cross-node', 'reference'] },
          backend: { type: ['string', 'null'] },
          fastPath: { enum: ['bpf'] },
          from: endpoint,
          to: endpoint,
          hops: {
            type: 'array',
            items: {
              type: 'object',
              required: ['host', 'netns', 'device', 'kind', 'mtu'],
              properties: {
                host: { type: 'string' },
                netns: { type: 'string' },
                device: { type: 'string' },
                kind: { enum: ['pod', 'veth', 'bridge', 'overlay', 'underlay'] },
                mtu: { type: 'integer' },
              },
            },
          },
          status: { enum: ['ok', 'unreachable', 'failed'] },
          reason: { type: 'string' },
          tcp1: throughput,
          tcp4: throughput,
          latency: {
            type: 'object',
            required: ['p50Us', 'p90Us', 'p99Us', 'p999Us', 'meanUs'],
            properties: { p50Us: stat, p90Us: stat, p99Us: stat, p999Us: stat, meanUs: stat },
          },
          ratios: {
            type: 'object',
            required: ['tcp1', 'tcp4', 'latencyP50', 'cpuPerGbps'],
            properties: { tcp1: ratio, tcp4: ratio, latencyP50: ratio, cpuPerGbps: ratio },
          },
        },
      },
    },
  },
} as const;

/** The schema violations of a document, as "path: message" lines (empty when it is valid). */
export const schemaErrors = schemaChecker(RESULT_JSON_SCHEMA);

/** Parses and validates a result file's text; a WeftError names the file and the first problems. */
export function parseResult(text: string, source: string): BenchResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new WeftError(`${source}: not JSON (${(e as Error).message})`);
  }
  const schema = (doc as { schema?: unknown } | null)?.schema;
  if (schema !== RESULT_SCHEMA_ID) {
    throw new WeftError(
      `${source}: not a ${RESULT_SCHEMA_ID} result (schema is ${JSON.stringify(schema ?? null)})`,
      { hint: 'pass the result.json that `weft bench --out DIR` wrote' },
    );
  }
  const errs = schemaErrors(doc);
  if (errs.length > 0) throw new WeftError(`${source}: invalid result: ${errs.slice(0, 3).join('; ')}`);
  return doc as BenchResult;
}

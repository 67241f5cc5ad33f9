import type { DemoTracer } from './tracer.js';

/** What every step of the demo gets: the lab it works on, its settings, and where to say things. */
export interface DemoContext {
  lab: string;
  underlay: 'neutron' | 'flat';
  /** The output directory (weft-demo/). */
  out: string;
  /** Seconds per bench measurement and repetitions. */
  seconds: number;
  repetitions: number;
  /** weft trace and the lab's services (tracer.ts). */
  tracer: DemoTracer;
  /** A line of the text summary. */
  say(line?: string): void;
  /** Progress of a long step (indented, with the time since the demo started). */
  progress(msg: string): void;
}

/** Milliseconds → seconds with one decimal, for the text. */
export const secs = (ms: number): number => Math.round(ms / 100) / 10;

/**
 * IPv4 addresses and prefixes as 32-bit unsigned integers. Small on purpose: the agent needs subnet
 * arithmetic (containment, alignment, iteration), not a general IP library.
 */

export type IPv4 = number;

export function parseIPv4(text: string): IPv4 | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function formatIPv4(ip: IPv4): string {
  return [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join('.');
}

export function maskOf(prefixLen: number): number {
  return prefixLen === 0 ? 0 : (0xffffffff << (32 - prefixLen)) >>> 0;
}

/** An IPv4 network: `ip` is always the network address (host bits zero). */
export class Cidr {
  readonly ip: IPv4;
  readonly len: number;

  constructor(ip: IPv4, len: number) {
    this.ip = (ip & maskOf(len)) >>> 0;
    this.len = len;
  }

  /** Parses "a.b.c.d/len". With `strict`, host bits must be zero. */
  static parse(text: string, strict = false): Cidr | undefined {
    const m = /^([\d.]+)\/(\d{1,2})$/.exec(text.trim());
    if (!m) return undefined;
    const ip = parseIPv4(m[1]!);
    const len = Number(m[2]);
    if (ip === undefined || len > 32) return undefined;
    if (strict && (ip & maskOf(len)) >>> 0 !== ip) return undefined;
    return new Cidr(ip, len);
  }

  get size(): number {
    return 2 ** (32 - this.len);
  }
  get last(): IPv4 {
    return (this.ip + this.size - 1) >>> 0;
  }
  /** The n-th address of the network (0 = network address). */
  host(n: number): IPv4 {
    return (this.ip + n) >>> 0;
  }
  contains(ip: IPv4): boolean {
    return (ip & maskOf(this.len)) >>> 0 === this.ip;
  }
  containsCidr(other: Cidr): boolean {
    return other.len >= this.len && this.contains(other.ip);
  }
  overlaps(other: Cidr): boolean {
    return this.contains(other.ip) || other.contains(this.ip);
  }
  equals(other: Cidr): boolean {
    return this.ip === other.ip && this.len === other.len;
  }
  toString(): string {
    return `${formatIPv4(this.ip)}/${this.len}`;
  }
  /** Flannel's subnet key form: "10.244.1.0-24". */
  toKey(): string {
    return `${formatIPv4(this.ip)}-${this.len}`;
  }
  static fromKey(key: string): Cidr | undefined {
    const m = /(\d+\.\d+\.\d+\.\d+)-(\d+)$/.exec(key);
    return m ? Cidr.parse(`${m[1]}/${m[2]}`, true) : undefined;
  }
}

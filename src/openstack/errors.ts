/**
 * Errors of the OpenStack client. Each is a WeftError: one line naming the cause and, in its hint, the
 * fix. None of them ever carries a credential: messages are built from URLs with any user-info removed,
 * from Neutron's own error text, and from names the user wrote (cloud names, file paths, option keys).
 */
import { WeftError } from '../util/errors.js';

/** clouds.yaml / secure.yaml / OS_* configuration is missing, unreadable or malformed. */
export class CloudConfigError extends WeftError {
  constructor(message: string, hint: string, cause?: unknown) {
    super(message, cause === undefined ? { hint } : { hint, cause });
  }
}

/** Keystone refused the credentials, or returned something we cannot use (no token, no catalog entry). */
export class OpenStackAuthError extends WeftError {
  readonly status: number | undefined;
  constructor(message: string, hint: string, status?: number) {
    super(message, { hint });
    this.status = status;
  }
}

/** An OpenStack endpoint could not be reached at all (refused, DNS, TLS, timeout). */
export class OpenStackUnreachableError extends WeftError {
  readonly url: string;
  readonly code: string | undefined;
  constructor(service: string, url: string, code: string | undefined, detail: string, hint: string) {
    super(`${service} at ${url} is unreachable: ${detail}`, { hint });
    this.url = url;
    this.code = code;
  }
}

/**
 * Neutron answered with an error. `type` is `NeutronError.type` (e.g. "AllowedAddressPairExhausted",
 * "RoutesExhausted", "RevisionNumberConstraintFailed", "PortNotFound"), `neutronMessage` its message.
 */
export class NeutronApiError extends WeftError {
  readonly status: number;
  readonly type: string;
  readonly neutronMessage: string;
  readonly method: string;
  readonly path: string;
  readonly requestId: string | undefined;
  constructor(opts: {
    status: number;
    type: string;
    neutronMessage: string;
    method: string;
    path: string;
    requestId?: string | undefined;
    hint?: string | undefined;
  }) {
    super(
      `Neutron ${opts.method} ${opts.path} failed: ${opts.status} ${opts.type}: ${opts.neutronMessage}`,
      opts.hint === undefined ? {} : { hint: opts.hint },
    );
    this.status = opts.status;
    this.type = opts.type;
    this.neutronMessage = opts.neutronMessage;
    this.method = opts.method;
    this.path = opts.path;
    this.requestId = opts.requestId;
  }
}

/** Removes user-info (user:password@) and query strings from a URL before it goes into a message. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//').replace(/\?.*$/, '');
  }
}

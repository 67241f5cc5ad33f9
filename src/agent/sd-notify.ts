import { loadAddon } from '../util/addon.js';

/**
 * Tells systemd (Type=notify) how the agent is doing: "READY=1" once its data path and subnet file are
 * in place, "STOPPING=1" on the way out. Sent from the agent's own process (native/sd-notify.c), so the
 * unit needs no NotifyAccess=all. Outside systemd ($NOTIFY_SOCKET unset) it does nothing.
 */
interface SdNotifyAddon {
  notify(state: string): boolean;
}

let addon: SdNotifyAddon | undefined;

/** Returns false when not run by systemd; throws a WeftError when systemd asked but cannot be told. */
export function sdNotify(state: string): boolean {
  if (!process.env.NOTIFY_SOCKET) return false;
  addon ??= loadAddon<SdNotifyAddon>(new URL('./sd-notify.node', import.meta.url), 'NOTIFY_SOCKET is set');
  return addon.notify(state);
}

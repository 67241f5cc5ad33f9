/**
 * The lab's view of namespace plumbing. It lives in the kernel layer (src/kernel/netns.ts) and in
 * src/util/process.ts; this module keeps the lab's imports as they were.
 */
export {
  destroyNetns,
  execIn,
  ipIn,
  listNetns,
  netnsPids,
  pingOnce,
  spawnIn,
  sysctlIn,
} from '../kernel/netns.js';
export { cmdline, killAll } from '../util/process.js';
